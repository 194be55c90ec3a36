"""Viewpoint of a posed body relative to a camera, from its 3D COCO-17 joints.

Azimuth comes from the torso's orientation (0 = camera in front of the person, 90 = on the
person's left, 180 = behind), elevation from the angle of the body->camera direction above the
horizontal plane. The same convention places cameras in :mod:`posedive_lib.render.camera`.
"""
from __future__ import annotations

import numpy as np

from ..body.joints import COCO17_INDEX
from .camera import WORLD_UP

_LS, _RS = COCO17_INDEX["left_shoulder"], COCO17_INDEX["right_shoulder"]
_LH, _RH = COCO17_INDEX["left_hip"], COCO17_INDEX["right_hip"]


def torso_frame(joints: np.ndarray, up: np.ndarray = WORLD_UP) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Torso centre, horizontal front and left unit vectors, each (B, 3), from COCO-17 joints."""
    joints = np.asarray(joints, float)
    if joints.ndim != 3 or joints.shape[1:] != (17, 3):
        raise ValueError(f"joints must be (B, 17, 3) COCO-17 points, got {joints.shape}")
    up = np.asarray(up, float) / np.linalg.norm(up)
    left = (joints[:, _LS] - joints[:, _RS]) + (joints[:, _LH] - joints[:, _RH])
    left = left - (left @ up)[:, None] * up
    norm = np.linalg.norm(left, axis=-1, keepdims=True)
    if np.any(norm < 1e-9):
        raise ValueError("torso left-right axis is vertical or degenerate: the viewpoint is undefined")
    left = left / norm
    front = np.cross(left, up)
    center = joints[:, [_LS, _RS, _LH, _RH]].mean(axis=1)
    return center, front, left


def body_viewpoint(joints: np.ndarray, camera_centers: np.ndarray, up: np.ndarray = WORLD_UP) -> tuple[np.ndarray, np.ndarray]:
    """``(elevation, azimuth)`` in degrees of each camera relative to each body.

    ``joints`` (B, 17, 3) and ``camera_centers`` (B, 3) share a frame whose vertical is ``up``;
    for joints in camera coordinates pass zeros as centres and the camera-frame up vector.
    """
    center, front, left = torso_frame(joints, up)
    up = np.asarray(up, float) / np.linalg.norm(up)
    view = np.atleast_2d(camera_centers) - center
    view /= np.linalg.norm(view, axis=-1, keepdims=True)
    elevation = np.degrees(np.arcsin(np.clip(view @ up, -1, 1)))
    azimuth = np.mod(np.degrees(np.arctan2(np.einsum("bi,bi->b", view, left), np.einsum("bi,bi->b", view, front))), 360)
    return elevation, azimuth


def angular_difference(a_deg, b_deg) -> np.ndarray:
    """Smallest absolute difference between two angles in degrees (wraps at 360)."""
    return np.abs((np.asarray(a_deg) - np.asarray(b_deg) + 180.0) % 360.0 - 180.0)
