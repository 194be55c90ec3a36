"""SMPL through ``smplx``, as in the paper, loaded from the user's licensed model file.

SMPL cannot be redistributed: register at https://smpl.is.tue.mpg.de, download "SMPL for Python"
(v1.1.0 files are plain NumPy pickles) and pass the ``.pkl``/``.npz`` file or its folder as
``model_path`` (or set ``POSEDIVE_SMPL_PATH``).
"""
from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .base import SMPL_TO_WORLD, BodyModel, PosedBody
from .joints import COCO17, SMPL_COCO17_SOURCE
from .poses import Pose, stack_poses

GENDERS = ("neutral", "female", "male")
NUM_BETAS = 10
_GENDER_IN_NAME = re.compile(r"^SMPL_(NEUTRAL|FEMALE|MALE)\.|^basic[mM]odel_(neutral|f|m)_lbs", re.IGNORECASE)
_GET_SMPL = ("register at https://smpl.is.tue.mpg.de, download 'SMPL for Python' and pass the .pkl file "
             "or its folder as model_path (or set POSEDIVE_SMPL_PATH)")


def file_gender(path: str | os.PathLike) -> str | None:
    """The gender an official SMPL file name states (``SMPL_FEMALE.pkl``, ``basicmodel_m_lbs_...``), else None."""
    match = _GENDER_IN_NAME.search(Path(path).name)
    if match is None:
        return None
    word = (match[1] or match[2]).lower()
    return {"f": "female", "m": "male"}.get(word, word)


def find_smpl_file(model_path: str | os.PathLike | None, gender: str | None = None) -> Path:
    """The SMPL model file for ``gender`` given a file, a folder of SMPL files, or ``$POSEDIVE_SMPL_PATH``.

    ``gender=None``: a file is taken as it is, and a folder gives its neutral model."""
    if gender is not None and gender not in GENDERS:
        raise ValueError(f"SMPL gender must be one of {GENDERS}, got {gender!r}")
    model_path = model_path or os.environ.get("POSEDIVE_SMPL_PATH")
    if not model_path:
        raise FileNotFoundError(f"no SMPL model given: {_GET_SMPL}")
    path = Path(model_path).expanduser()
    if path.is_file():
        named = file_gender(path)
        if gender is not None and named not in (None, gender):
            raise ValueError(f"{path.name} is the {named} SMPL model but gender={gender!r} was asked for; pass "
                             f"gender={named!r}, or the folder that holds the {gender} file")
        return path
    if path.is_dir():
        gender = gender or "neutral"
        g = gender.upper()
        tag = {"neutral": "neutral", "female": "f", "male": "m"}[gender]
        patterns = [f"SMPL_{g}.pkl", f"SMPL_{g}.npz", f"smpl/SMPL_{g}.pkl", f"smpl/SMPL_{g}.npz",
                    f"basicmodel_{tag}_lbs_10_207_0_v1.*.pkl", f"basicModel_{tag}_lbs_10_207_0_v1.*.pkl"]
        for pattern in patterns:
            found = sorted(path.glob(pattern))
            if found:
                return found[0]
        raise FileNotFoundError(f"no {gender} SMPL model file (SMPL_{g}.pkl or basicmodel_{tag}_lbs_*.pkl) in {path}: {_GET_SMPL}")
    raise FileNotFoundError(f"SMPL model path {path} does not exist: {_GET_SMPL}")


class SMPLBody(BodyModel):
    """SMPL (6,890 vertices) posed by ``smplx``; COCO-17 from joints and face vertices."""

    name = "smpl"

    def __init__(self, model_path: str | os.PathLike | None = None, gender: str | None = None,
                 device: str | torch.device = "cpu"):
        """``gender=None``: the gender the file name states (neutral for a folder or an unnamed file)."""
        import smplx

        self.model_file = find_smpl_file(model_path, gender)
        gender = gender or file_gender(self.model_file) or "neutral"
        self.device = torch.device(device)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a warning for 10-beta models
                model = smplx.SMPL(model_path=str(self.model_file), gender=gender, num_betas=NUM_BETAS,
                                   batch_size=1)
        except Exception as error:  # unpickling errors, missing arrays, chumpy-only files...
            raise ValueError(f"cannot load SMPL model {self.model_file} ({type(error).__name__}: {error}); "
                             f"use an official SMPL v1.1.0 file: {_GET_SMPL}") from error
        self.model = model.to(self.device).eval()
        self.faces = torch.as_tensor(self.model.faces.astype(np.int64), device=self.device)
        self._coco_sources = [SMPL_COCO17_SOURCE[name] for name in COCO17]
        num_vertices = self.model.v_template.shape[0]
        if max(i for kind, i in self._coco_sources if kind == "vertex") >= num_vertices:
            raise ValueError(f"{self.model_file} has {num_vertices} vertices but SMPL has 6890: not an SMPL model file")

    def random_shape(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """(n, 10) betas ~ N(0, 1) clipped to +-2 standard deviations."""
        return torch.tensor(np.clip(rng.standard_normal((n, NUM_BETAS)), -2, 2), dtype=torch.float32)

    @torch.no_grad()
    def __call__(self, poses: Sequence[Pose], shape: torch.Tensor | None = None) -> PosedBody:
        full = torch.as_tensor(stack_poses(poses), dtype=torch.float32, device=self.device)
        n = len(full)
        betas = torch.zeros(n, NUM_BETAS, device=self.device) if shape is None else \
            torch.as_tensor(shape, dtype=torch.float32, device=self.device).reshape(-1, NUM_BETAS).expand(n, -1)
        out = self.model(betas=betas, global_orient=full[:, 0], body_pose=full[:, 1:].reshape(n, -1),
                         transl=torch.zeros(n, 3, device=self.device))
        M = SMPL_TO_WORLD.to(self.device)
        vertices, joints = out.vertices @ M.T, out.joints @ M.T
        coco = torch.stack([(vertices if kind == "vertex" else joints)[:, i] for kind, i in self._coco_sources], dim=1)
        return PosedBody(vertices, self.faces, coco)
