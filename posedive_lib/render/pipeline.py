"""Body model + pose + viewpoint -> condition maps (depth, normal, skeleton), batched."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from ..body.base import BodyModel, PosedBody
from ..body.poses import Pose
from .camera import Cameras, check_image_size, orbit_cameras
from .conditions import draw_skeleton, encode_depth, encode_normal
from .raycast import RayCaster
from .viewpoint import body_viewpoint


@dataclass
class ConditionMaps:
    """A batch of encoded condition maps with everything needed to record where they came from."""

    depth: np.ndarray  # (B, H, W) uint8
    normal: np.ndarray  # (B, H, W, 3) uint8
    skeleton: np.ndarray  # (B, H, W, 3) uint8
    mask: np.ndarray  # (B, H, W) bool
    keypoints: np.ndarray  # (B, 17, 3) projected COCO-17: pixel u, v and camera depth
    elevation: np.ndarray  # (B,) degrees, measured from the posed torso
    azimuth: np.ndarray  # (B,) degrees, measured from the posed torso
    pose_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.depth)

    def as_tensor(self) -> torch.Tensor:
        """(B, 7, H, W) float in [0, 1]: depth (1), normal (3), skeleton (3) channels."""
        chans = np.concatenate([self.depth[..., None], self.normal, self.skeleton], axis=-1)
        return torch.from_numpy(chans).permute(0, 3, 1, 2).float() / 255.0


class ConditionRenderer:
    """Renders condition maps of posed bodies seen from given viewpoints, framed as Re-ID crops."""

    def __init__(self, body: BodyModel, width: int = 192, height: int = 384, distance: float = 5.0,
                 margin: float = 0.06, device: str | None = None):
        check_image_size(width, height)
        self.body, self.width, self.height = body, int(width), int(height)
        self.distance, self.margin = float(distance), float(margin)
        self.caster = RayCaster(body.faces.cpu(), template=body.rest_vertices(), device=device)

    def cameras(self, posed: PosedBody, elevation, azimuth) -> Cameras:
        """Cameras at (elevation, azimuth) relative to each body's rest facing, aimed at its centre."""
        return orbit_cameras(posed.vertices.cpu().numpy(), elevation, azimuth, self.distance,
                             self.width, self.height, self.margin)

    def render_posed(self, posed: PosedBody, cameras: Cameras, pose_ids: Sequence[str] = ()) -> ConditionMaps:
        hits = self.caster.render(posed.vertices, cameras)
        joints = posed.joints.cpu().numpy().astype(float)
        keypoints = cameras.project(joints)
        elevation, azimuth = body_viewpoint(joints, cameras.centers)
        return ConditionMaps(
            depth=encode_depth(hits.depth, hits.mask), normal=encode_normal(hits.normal, hits.mask),
            skeleton=draw_skeleton(keypoints, self.width, self.height), mask=hits.mask,
            keypoints=keypoints.astype(np.float32), elevation=elevation, azimuth=azimuth,
            pose_ids=list(pose_ids))

    def render(self, poses: Sequence[Pose], elevation, azimuth, shape: Any = None) -> ConditionMaps:
        """Condition maps of ``poses`` seen from the given elevations and azimuths (degrees)."""
        elevation, azimuth = np.broadcast_to(elevation, (len(poses),)), np.broadcast_to(azimuth, (len(poses),))
        posed = self.body(poses, shape)
        return self.render_posed(posed, self.cameras(posed, elevation, azimuth), [p.pose_id for p in poses])
