"""Camera math: look-at frames, orbit placement, projection round trips, framing, sampling."""
from __future__ import annotations

import numpy as np
import pytest

from posedive_lib.render.camera import (BODY_FRONT, BODY_LEFT, WORLD_UP, Cameras, ViewpointSampler, check_angles,
                                        fit_intrinsics, look_at, orbit_cameras, orbit_eyes)


def _random_cameras(rng, n=5, width=192, height=384):
    eyes = rng.normal(size=(n, 3)) * 3 + np.array([0, 0, 1.0])
    R, t = look_at(eyes, np.zeros((n, 3)))
    K = np.tile(np.array([[300.0, 0, width / 2], [0, 300.0, height / 2], [0, 0, 1]]), (n, 1, 1))
    return Cameras(K, R, t, width, height), eyes


def test_look_at_is_a_proper_rotation_aimed_at_the_target():
    rng = np.random.default_rng(0)
    cams, eyes = _random_cameras(rng)
    for R in cams.R:
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(R), 1.0)
    np.testing.assert_allclose(cams.centers, eyes, atol=1e-12)
    target_cam = cams.to_camera(np.zeros((len(cams), 1, 3)))[:, 0]
    np.testing.assert_allclose(target_cam[:, :2], 0, atol=1e-12)
    np.testing.assert_allclose(target_cam[:, 2], np.linalg.norm(eyes, axis=1))
    # Image "down" points down in the world for cameras that are not upside down.
    assert np.all(cams.R[:, 1] @ WORLD_UP < 0)


def test_projection_round_trip():
    rng = np.random.default_rng(1)
    cams, _ = _random_cameras(rng)
    points = rng.normal(size=(len(cams), 50, 3)) * 0.5
    uvz = cams.project(points)
    rays = np.einsum("bij,bnj->bni", np.linalg.inv(cams.K), np.concatenate([uvz[..., :2], np.ones_like(uvz[..., :1])], -1))
    cam_points = rays * uvz[..., 2:3]
    world = np.einsum("bji,bnj->bni", cams.R, cam_points - cams.t[:, None])
    np.testing.assert_allclose(world, points, atol=1e-9)


@pytest.mark.parametrize("elevation, azimuth, direction", [
    (0, 0, BODY_FRONT), (0, 90, BODY_LEFT), (0, 180, -BODY_FRONT), (0, 270, -BODY_LEFT), (90, 37, WORLD_UP),
    (30, 0, np.cos(np.radians(30)) * BODY_FRONT + np.sin(np.radians(30)) * WORLD_UP),
])
def test_orbit_eyes_follow_the_body_convention(elevation, azimuth, direction):
    center = np.array([[0.2, -0.1, 0.9]])
    eye = orbit_eyes(center, np.array([elevation]), np.array([azimuth]), 4.0)
    np.testing.assert_allclose(eye[0], center[0] + 4.0 * np.asarray(direction), atol=1e-12)


def test_fit_intrinsics_frames_the_points_inside_the_crop():
    rng = np.random.default_rng(2)
    vertices = rng.normal(size=(3, 400, 3)) * np.array([0.25, 0.15, 0.8])
    for width, height in ((192, 384), (64, 128), (100, 100)):
        cams = orbit_cameras(vertices, np.array([0, 15, 30]), np.array([0, 120, 250]), 5.0, width, height, margin=0.1)
        uv = cams.project(vertices)[..., :2]
        assert np.all(uv[..., 0] >= 0.1 * width - 1e-3) and np.all(uv[..., 0] <= 0.9 * width + 1e-3)
        assert np.all(uv[..., 1] >= 0.1 * height - 1e-3) and np.all(uv[..., 1] <= 0.9 * height + 1e-3)
        # The binding side touches the margin on both ends: the body fills the crop.
        fill = np.maximum(np.ptp(uv[..., 0], -1) / width, np.ptp(uv[..., 1], -1) / height)
        np.testing.assert_allclose(fill, 0.8, atol=1e-5)


def test_bad_camera_input_gives_clear_errors():
    with pytest.raises(ValueError, match="elevation must lie in \\[-90, 90\\]"):
        check_angles(np.array([95.0]), np.array([0.0]))
    with pytest.raises(ValueError, match="azimuth must be finite"):
        check_angles(np.array([10.0]), np.array([np.nan]))
    with pytest.raises(ValueError, match="distance must be positive"):
        orbit_eyes(np.zeros((1, 3)), np.array([0.0]), np.array([0.0]), -1.0)
    with pytest.raises(ValueError, match="image size must be positive"):
        Cameras(np.eye(3)[None], np.eye(3)[None], np.zeros((1, 3)), 0, 128)
    with pytest.raises(ValueError, match="image size must be positive"):
        fit_intrinsics(np.ones((1, 4, 3)), 64, 0)
    with pytest.raises(ValueError, match="margin"):
        fit_intrinsics(np.ones((1, 4, 3)), 64, 128, margin=0.7)
    with pytest.raises(ValueError, match="behind the camera"):
        fit_intrinsics(-np.ones((1, 4, 3)), 64, 128)


def test_viewpoint_sampler_ranges_and_reproducibility():
    sampler = ViewpointSampler()
    el, az = sampler.sample(5000, np.random.default_rng(3))
    assert el.min() >= 0 and el.max() <= 30 and az.min() >= 0 and az.max() < 360
    assert abs(el.mean() - 15) < 0.5 and abs(az.mean() - 180) < 6
    el2, az2 = sampler.sample(5000, np.random.default_rng(3))
    np.testing.assert_array_equal(el, el2)
    np.testing.assert_array_equal(az, az2)
    el, az = ViewpointSampler((5, 10), (-45, 45)).sample(1000, np.random.default_rng(0))
    assert el.min() >= 5 and el.max() <= 10 and np.all((az <= 45) | (az >= 315))
    with pytest.raises(ValueError, match="elevation_range"):
        ViewpointSampler((0, 120))
    with pytest.raises(ValueError, match="azimuth_range"):
        ViewpointSampler((0, 30), (0, 720))
