"""The body-model interface: shape + pose in, posed mesh and COCO-17 joints out.

World frame of the whole package: metres, Z up, the body's rest front facing -Y, its left
along +X (Anny's native frame). Poses use SMPL's convention (see :mod:`posedive_lib.body.poses`).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

# SMPL axes (x left, y up, z forward) -> world axes (x left, z up, -y forward).
SMPL_TO_WORLD = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass
class PosedBody:
    """A batch of posed bodies in world coordinates."""

    vertices: torch.Tensor  # (B, V, 3)
    faces: torch.Tensor  # (F, 3) int64, shared by the batch
    joints: torch.Tensor  # (B, 17, 3) COCO-17

    def __len__(self) -> int:
        return self.vertices.shape[0]


class BodyModel(ABC):
    """Turns shape parameters and SMPL-convention poses into posed meshes and joints."""

    name: str

    @abstractmethod
    def __call__(self, poses: Sequence[Any], shape: Any = None) -> PosedBody:
        """Pose a batch: ``poses`` is a sequence of :class:`~posedive_lib.body.poses.Pose`."""

    def rest_vertices(self) -> np.ndarray:
        """(V, 3) vertices of the mean shape in SMPL's rest T-pose (limbs apart)."""
        from .poses import Pose

        return self([Pose("rest", np.zeros((23, 3)))]).vertices[0].cpu().numpy()

    @abstractmethod
    def random_shape(self, n: int, rng: np.random.Generator) -> Any:
        """Shape parameters for ``n`` random plausible adults, in this model's own format."""
