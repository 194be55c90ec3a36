"""Pinhole cameras in OpenCV axes (x right, y down, z forward), aimed at the body centre.

A camera is placed on a sphere around the body by elevation (degrees above the horizontal
plane), azimuth (degrees around the vertical axis, 0 = in front of the body, 90 = on its
left, 180 = behind) and distance. Intrinsics are fitted per image so the person fills a
Re-ID crop of any W x H, as a pedestrian detector's box would.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORLD_UP = np.array([0.0, 0.0, 1.0])
BODY_FRONT = np.array([0.0, -1.0, 0.0])  # rest-pose facing direction in world axes
BODY_LEFT = np.array([1.0, 0.0, 0.0])


def check_image_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width} x {height}")


@dataclass
class Cameras:
    """A batch of pinhole cameras: ``x_cam = R @ x_world + t``, ``pixel ~ K @ x_cam``."""

    K: np.ndarray  # (B, 3, 3)
    R: np.ndarray  # (B, 3, 3) world -> camera rotation
    t: np.ndarray  # (B, 3)
    width: int
    height: int

    def __post_init__(self):
        check_image_size(self.width, self.height)

    def __len__(self) -> int:
        return self.R.shape[0]

    @property
    def centers(self) -> np.ndarray:
        """(B, 3) camera centres in world coordinates."""
        return -np.einsum("bji,bj->bi", self.R, self.t)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(B, N, 3) world points -> camera coordinates."""
        return np.einsum("bij,bnj->bni", self.R, points) + self.t[:, None]

    def project(self, points: np.ndarray) -> np.ndarray:
        """(B, N, 3) world points -> (B, N, 3): pixel u, v and camera depth z."""
        cam = self.to_camera(points)
        z = cam[..., 2:3]
        uv = np.einsum("bij,bnj->bni", self.K, cam / np.where(np.abs(z) < 1e-9, 1e-9, z))[..., :2]
        return np.concatenate([uv, z], axis=-1)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = WORLD_UP) -> tuple[np.ndarray, np.ndarray]:
    """World->camera (R, t) for cameras at ``eye`` (B, 3) looking at ``target`` (B, 3)."""
    eye, target = np.atleast_2d(eye).astype(float), np.atleast_2d(target).astype(float)
    forward = target - eye
    norm = np.linalg.norm(forward, axis=-1, keepdims=True)
    if np.any(norm < 1e-9):
        raise ValueError("camera eye and target coincide: use a positive distance")
    forward /= norm
    right = np.cross(forward, up)
    degenerate = np.linalg.norm(right, axis=-1) < 1e-6
    if np.any(degenerate):  # looking straight up or down: pick any horizontal right vector
        right[degenerate] = np.cross(forward[degenerate], BODY_FRONT)
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    R = np.stack([right, down, forward], axis=1)
    t = -np.einsum("bij,bj->bi", R, eye)
    return R, t


def check_angles(elevation_deg, azimuth_deg) -> None:
    elevation = np.asarray(elevation_deg, float)
    if np.any(~np.isfinite(elevation)) or np.any(np.abs(elevation) > 90):
        raise ValueError(f"elevation must lie in [-90, 90] degrees, got {elevation.ravel()[:5].tolist()}")
    if np.any(~np.isfinite(np.asarray(azimuth_deg, float))):
        raise ValueError("azimuth must be finite (degrees, any value; 360 wraps)")


def orbit_eyes(center: np.ndarray, elevation_deg, azimuth_deg, distance, front: np.ndarray = BODY_FRONT,
               left: np.ndarray = BODY_LEFT) -> np.ndarray:
    """(B, 3) camera positions around ``center`` at the given viewpoint relative to the body."""
    check_angles(elevation_deg, azimuth_deg)
    distance = np.broadcast_to(np.asarray(distance, float), np.shape(elevation_deg))
    if np.any(distance <= 0):
        raise ValueError(f"camera distance must be positive, got {np.ravel(distance)[:5].tolist()}")
    el, az = np.radians(elevation_deg), np.radians(azimuth_deg)
    horizontal = np.cos(az)[..., None] * front + np.sin(az)[..., None] * left
    direction = np.cos(el)[..., None] * horizontal + np.sin(el)[..., None] * WORLD_UP
    return np.atleast_2d(center) + np.asarray(distance)[..., None] * direction


def fit_intrinsics(points_cam: np.ndarray, width: int, height: int, margin: float = 0.06) -> np.ndarray:
    """(B, 3, 3) intrinsics with square pixels framing each point set like a Re-ID crop.

    The bounding box of the projected points is centred and scaled so its longer side (relative
    to the crop) fills the crop minus ``margin`` on each side.
    """
    check_image_size(width, height)
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must lie in [0, 0.5), got {margin}")
    z = points_cam[..., 2]
    if np.any(z <= 1e-6):
        raise ValueError("points behind the camera: move the camera further away")
    x, y = points_cam[..., 0] / z, points_cam[..., 1] / z
    x0, x1, y0, y1 = x.min(-1), x.max(-1), y.min(-1), y.max(-1)
    focal = np.minimum((1 - 2 * margin) * width / np.maximum(x1 - x0, 1e-9),
                       (1 - 2 * margin) * height / np.maximum(y1 - y0, 1e-9))
    K = np.zeros((len(focal), 3, 3))
    K[:, 0, 0] = K[:, 1, 1] = focal
    K[:, 0, 2] = width / 2 - focal * (x0 + x1) / 2
    K[:, 1, 2] = height / 2 - focal * (y0 + y1) / 2
    K[:, 2, 2] = 1.0
    return K


def orbit_cameras(vertices: np.ndarray, elevation_deg, azimuth_deg, distance=4.0, width: int = 192,
                  height: int = 384, margin: float = 0.06) -> Cameras:
    """Cameras at the given viewpoints, aimed at each body's bounding-box centre, framing it."""
    vertices = np.asarray(vertices)
    center = 0.5 * (vertices.min(1) + vertices.max(1)).astype(float)
    eyes = orbit_eyes(center, elevation_deg, azimuth_deg, distance)
    R, t = look_at(eyes, center)
    # Framing only needs the projected extent: float32 batched matmul is plenty accurate.
    cam_points = vertices.astype(np.float32) @ R.transpose(0, 2, 1).astype(np.float32) + t[:, None].astype(np.float32)
    return Cameras(fit_intrinsics(cam_points, width, height, margin), R, t, width, height)


@dataclass(frozen=True)
class ViewpointSampler:
    """Elevation ~ U(alpha_min, alpha_max), azimuth ~ U(gamma_min, gamma_max), in degrees (paper Sec. 3.3)."""

    elevation_range: tuple[float, float] = (0.0, 30.0)
    azimuth_range: tuple[float, float] = (0.0, 360.0)

    def __post_init__(self):
        (e0, e1), (a0, a1) = self.elevation_range, self.azimuth_range
        if not (-90 <= e0 <= e1 <= 90):
            raise ValueError(f"elevation_range must satisfy -90 <= min <= max <= 90 degrees, got {self.elevation_range}")
        if not (a0 <= a1 and a1 - a0 <= 360):
            raise ValueError(f"azimuth_range must satisfy min <= max and span at most 360 degrees, got {self.azimuth_range}")

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(elevation, azimuth)`` arrays of ``n`` viewpoints, azimuth wrapped to [0, 360)."""
        elevation = rng.uniform(*self.elevation_range, size=n)
        azimuth = np.mod(rng.uniform(*self.azimuth_range, size=n), 360.0)
        return elevation, azimuth
