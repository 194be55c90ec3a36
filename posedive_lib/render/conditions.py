"""Condition maps for the generator: depth, surface normals and an OpenPose-style skeleton.

Encodings (uint8 images):
- depth: per image, inside the body mask, near = bright: ``DEPTH_FLOOR + (1 - DEPTH_FLOOR) *
  (far - z) / (far - near)``; background 0, so even the farthest body point differs from it.
- normal: camera-axis normals shown in the common normal-map convention (x right, y up, z toward
  the viewer) as ``(n + 1) / 2``; background 0.
- skeleton: OpenPose-18 limbs and joints in OpenPose colours, drawn from the projected 3D joints.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..body.joints import OPENPOSE18_COLORS, OPENPOSE18_LIMBS, coco17_to_openpose18
from .camera import check_image_size

DEPTH_FLOOR = 0.15
_NORMAL_TO_DISPLAY = np.array([1.0, -1.0, -1.0], np.float32)  # OpenCV camera axes -> x right, y up, z to viewer


def encode_depth(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, H, W) z-depth -> uint8, normalised per image, near = bright, background 0."""
    out = np.zeros(depth.shape, np.uint8)
    for b in range(depth.shape[0]):
        m = mask[b]
        if not m.any():
            continue
        z = depth[b][m]
        near, far = z.min(), z.max()
        scaled = (far - z) / max(far - near, 1e-6)
        out[b][m] = np.round(255 * (DEPTH_FLOOR + (1 - DEPTH_FLOOR) * scaled)).astype(np.uint8)
    return out


def encode_normal(normal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) camera-axis unit normals -> uint8 RGB normal map, background 0."""
    scaled = normal.astype(np.float32, copy=True)
    scaled *= 127.5 * _NORMAL_TO_DISPLAY
    scaled += 128.0  # (n + 1) / 2 * 255, rounded by the +0.5 of truncation
    rgb = np.minimum(scaled, 255.0).astype(np.uint8)
    rgb *= np.asarray(mask, np.uint8)[..., None]
    return rgb


def draw_skeleton(keypoints_uvz: np.ndarray, width: int, height: int, stick_width: int | None = None) -> np.ndarray:
    """(B, 17, 3) projected COCO-17 joints (u, v, depth) -> (B, H, W, 3) uint8 skeleton images.

    Joints behind the camera (depth <= 0) are left out with their limbs.
    """
    check_image_size(width, height)
    stick = stick_width or max(1, round(4 * height / 512))
    out = np.zeros((len(keypoints_uvz), height, width, 3), np.uint8)
    points = coco17_to_openpose18(np.asarray(keypoints_uvz, float))
    for b, pts in enumerate(points):
        image = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(image)
        visible = pts[:, 2] > 0
        for (i, j), color in zip(OPENPOSE18_LIMBS, OPENPOSE18_COLORS):
            if visible[i] and visible[j]:
                dim = tuple(int(0.6 * c) for c in color)  # OpenPose blends limbs at 60% over black
                draw.line([tuple(pts[i, :2]), tuple(pts[j, :2])], fill=dim, width=2 * stick)
        for k, color in enumerate(OPENPOSE18_COLORS):
            if visible[k]:
                u, v = pts[k, :2]
                draw.ellipse([u - stick, v - stick, u + stick, v + stick], fill=color)
        out[b] = np.asarray(image)
    return out
