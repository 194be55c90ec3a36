"""Anny (open MakeHuman-based body model, Apache-2.0 / CC0) as the default body model.

SMPL-convention poses are retargeted to Anny's rig: each SMPL joint drives one Anny bone
(:data:`~posedive_lib.body.joints.SMPL_TO_ANNY_BONE`), rotations are moved into Anny's axes, and
the arm bones get a fixed correction because Anny rests in an A-pose while SMPL rests in a T-pose.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import roma
import torch

from ..paths import configure_caches, trim_anny_cache
from .base import SMPL_TO_WORLD, BodyModel, PosedBody
from .joints import COCO17, SMPL24, SMPL24_PARENTS, SMPL_TO_ANNY_BONE
from .poses import Pose, stack_poses

PHENOTYPE_RANGES = {  # plausible adults
    "gender": (0.0, 1.0), "age": (0.45, 1.0), "muscle": (0.2, 0.8),
    "weight": (0.2, 0.8), "height": (0.2, 0.9), "proportions": (0.3, 0.7),
}

# Bones whose rest direction differs between Anny's A-pose and SMPL's T-pose:
# bone -> (bone at the far end of the segment, T-pose direction in world axes).
_ARM_SEGMENTS = {
    "upperarm01.L": ("lowerarm01.L", (1.0, 0.0, 0.0)), "lowerarm01.L": ("wrist.L", (1.0, 0.0, 0.0)),
    "wrist.L": ("finger3-1.L", (1.0, 0.0, 0.0)),
    "upperarm01.R": ("lowerarm01.R", (-1.0, 0.0, 0.0)), "lowerarm01.R": ("wrist.R", (-1.0, 0.0, 0.0)),
    "wrist.R": ("finger3-1.R", (-1.0, 0.0, 0.0)),
}


def _rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The smallest rotation taking unit direction ``a`` onto ``b``."""
    a, b = a / a.norm(), b / b.norm()
    axis = torch.linalg.cross(a, b)
    angle = torch.atan2(axis.norm(), torch.dot(a, b))
    if axis.norm() < 1e-8:
        return torch.eye(3, dtype=a.dtype)
    return roma.rotvec_to_rotmat(axis / axis.norm() * angle)


class AnnyBody(BodyModel):
    """Anny full-body model (13,718 vertices) with COCO-17 keypoints from its regressor."""

    name = "anny"

    def __init__(self, device: str | torch.device = "cpu"):
        configure_caches()
        import anny

        self.device = torch.device(device)
        self.model = anny.Anny().to(device=self.device, dtype=torch.float32)
        trim_anny_cache()
        self.keypoints = anny.KeypointsRegressor.coco(self.model, labels=list(COCO17)).to(self.device)
        self.faces = self.model.get_triangular_faces().long().to(self.device)
        labels = list(self.model.bone_labels)
        self.bone_count = len(labels)
        self._joint_ids = [j for j, name in enumerate(SMPL24) if name in SMPL_TO_ANNY_BONE]
        self._bone_ids = torch.tensor([labels.index(SMPL_TO_ANNY_BONE[SMPL24[j]]) for j in self._joint_ids])
        rest = self.model()["bone_poses"][0, :, :3, 3].cpu()
        corrections = {}
        for bone, (end, t_dir) in _ARM_SEGMENTS.items():
            corrections[bone] = _rotation_between(rest[labels.index(end)] - rest[labels.index(bone)], torch.tensor(t_dir))
        # A[j]: rest-to-T-pose correction of the bone driven by SMPL joint j (identity for most).
        self._corrections = torch.stack([
            corrections.get(SMPL_TO_ANNY_BONE.get(name, ""), torch.eye(3)) for name in SMPL24
        ]).to(self.device)

    def pose_parameters(self, poses: Sequence[Pose]) -> torch.Tensor:
        """(B, bones, 4, 4) Anny ``local-ref`` deltas for SMPL-convention poses."""
        rotvecs = torch.as_tensor(stack_poses(poses), device=self.device)
        M = SMPL_TO_WORLD.to(self.device)
        R = M @ roma.rotvec_to_rotmat(rotvecs) @ M.T  # (B, 24, 3, 3) in world axes
        A = self._corrections
        parents = torch.tensor([max(p, 0) for p in SMPL24_PARENTS], device=self.device)
        A_parent = torch.where((torch.tensor(SMPL24_PARENTS) < 0).to(self.device)[:, None, None],
                               torch.eye(3, device=self.device), A[parents])
        D = A_parent.transpose(-1, -2) @ R @ A  # D_j = A_parent^-1 R_j A_j
        out = torch.eye(4, device=self.device).repeat(len(poses), self.bone_count, 1, 1)
        out[:, self._bone_ids, :3, :3] = D[:, self._joint_ids]
        return out

    def random_shape(self, n: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return {k: torch.tensor(rng.uniform(lo, hi, n), dtype=torch.float32) for k, (lo, hi) in PHENOTYPE_RANGES.items()}

    @torch.no_grad()
    def __call__(self, poses: Sequence[Pose], shape: Mapping[str, torch.Tensor] | None = None) -> PosedBody:
        params = self.pose_parameters(poses)
        phenotypes = None
        if shape is not None:
            unknown = set(shape) - set(PHENOTYPE_RANGES)
            if unknown:
                raise ValueError(f"unknown Anny phenotypes {sorted(unknown)}; use {sorted(PHENOTYPE_RANGES)}")
            phenotypes = {k: torch.as_tensor(v, dtype=torch.float32, device=self.device).expand(len(poses))
                          for k, v in shape.items()}
            for k, v in phenotypes.items():
                if (v < 0).any() or (v > 1).any():
                    raise ValueError(f"Anny phenotype {k!r} must lie in [0, 1], got {v.tolist()}")
        out = self.model(pose_parameters=params, phenotype_kwargs=phenotypes)
        return PosedBody(out["vertices"], self.faces, self.keypoints(out))
