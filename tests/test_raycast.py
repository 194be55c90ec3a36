"""The warp ray caster against analytic geometry: planes and boxes."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

from posedive_lib.render.camera import Cameras, look_at
from posedive_lib.render.raycast import RayCaster, vertex_normals

W, H = 40, 30


def _camera(eye, target=(0.0, 0.0, 0.0), focal=40.0) -> Cameras:
    R, t = look_at(np.atleast_2d(np.asarray(eye, float)), np.atleast_2d(np.asarray(target, float)))
    K = np.array([[[focal, 0, W / 2], [0, focal, H / 2], [0, 0, 1]]])
    return Cameras(K, R, t, W, H)


def _pixel_rays_world(cams: Cameras) -> np.ndarray:
    """(H, W, 3) world ray directions with unit camera-z component, through pixel centres."""
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    pix = np.stack([u, v, np.ones_like(u)], -1)
    rays_cam = pix @ np.linalg.inv(cams.K[0]).T
    return rays_cam @ cams.R[0]


def _plane(normal, offset, size=20.0):
    """Two triangles spanning a square of the plane ``normal . x = offset``."""
    n = np.asarray(normal, float) / np.linalg.norm(normal)
    a = np.cross(n, [0.0, 0.0, 1.0] if abs(n[2]) < 0.9 else [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(n, a)
    c = n * offset
    verts = np.array([c - size * a - size * b, c + size * a - size * b, c + size * a + size * b, c - size * a + size * b])
    return verts, np.array([[0, 1, 2], [0, 2, 3]])


@pytest.mark.parametrize("normal, offset, eye", [
    ((0.0, -1.0, 0.0), 0.0, (0.0, -3.0, 0.0)),
    ((0.3, -1.0, 0.4), 0.2, (0.5, -3.0, 1.0)),
    ((0.0, 0.0, 1.0), 0.0, (0.0, -2.0, 2.5)),
])
def test_plane_depth_and_normal_are_analytic(normal, offset, eye):
    verts, faces = _plane(normal, offset)
    cams = _camera(eye)
    hits = RayCaster(faces).render(verts[None], cams)
    assert hits.mask.all() and set(np.unique(hits.face_id)) <= {0, 1}
    n = np.asarray(normal) / np.linalg.norm(normal)
    rays = _pixel_rays_world(cams)
    depth = (offset - cams.centers[0] @ n) / (rays @ n)  # camera-z of the hit, since rays have unit z
    np.testing.assert_allclose(hits.depth[0], depth, rtol=1e-4)
    n_cam = cams.R[0] @ n
    n_cam = -n_cam if n_cam @ (cams.R[0] @ (-cams.centers[0])) > 0 else n_cam  # face the camera
    np.testing.assert_allclose(hits.normal[0].reshape(-1, 3), np.tile(n_cam, (H * W, 1)), atol=1e-4)


def test_box_front_face_depth_normals_and_background():
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    cams = _camera((0.0, -3.0, 0.0))
    hits = RayCaster(np.asarray(box.faces)).render(np.asarray(box.vertices)[None], cams)
    # The front face y = -0.5 is at camera depth 2.5; it spans focal * 1 / 2.5 = 16 pixels.
    assert hits.mask[0].sum() == 16 * 16
    np.testing.assert_allclose(hits.depth[0][hits.mask[0]], 2.5, atol=1e-5)
    assert np.all(hits.depth[0][~hits.mask[0]] == 0) and np.all(hits.face_id[0][~hits.mask[0]] == -1)
    # Smooth normals of a cube's corner vertices are tilted, but all face the camera (-z).
    assert np.all(hits.normal[0][hits.mask[0]][:, 2] < 0)


def test_normals_face_the_camera_on_a_sphere_from_any_side():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.8)
    verts = np.repeat(np.asarray(sphere.vertices)[None], 3, 0)
    eyes = np.array([[0, -3.0, 0], [2.5, 1.0, 1.0], [0, 0.5, 3.0]])
    R, t = look_at(eyes, np.zeros((3, 3)))
    K = np.tile(np.array([[40.0, 0, W / 2], [0, 40.0, H / 2], [0, 0, 1]]), (3, 1, 1))
    hits = RayCaster(np.asarray(sphere.faces)).render(verts, Cameras(K, R, t, W, H))
    for b in range(3):
        n = hits.normal[b][hits.mask[b]]
        np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1, atol=1e-4)
        assert np.all(n[:, 2] < 0)
        # The silhouette centre sees the sphere head-on.
        np.testing.assert_allclose(hits.normal[b, H // 2, W // 2], [0, 0, -1], atol=0.05)
        assert hits.depth[b, H // 2, W // 2] == pytest.approx(np.linalg.norm(eyes[b]) - 0.8, abs=0.01)


def test_vertex_normals_of_a_sphere_point_outwards():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    v = np.asarray(sphere.vertices, np.float32)[None]
    n = vertex_normals(v, np.asarray(sphere.faces))
    cos = (n[0] * v[0]).sum(-1)  # icosphere vertices are unit vectors
    assert cos.min() > np.cos(np.radians(3))  # area weighting of uneven triangles tilts them slightly


def test_raycaster_rejects_bad_input():
    verts, faces = _plane((0, -1, 0), 0)
    cams = _camera((0, -3, 0))
    with pytest.raises(ValueError, match="one camera per mesh"):
        RayCaster(faces).render(np.repeat(verts[None], 2, 0), cams)
    with pytest.raises(ValueError, match="faces index vertex"):
        RayCaster(faces + 10).render(verts[None], cams)
    with pytest.raises(ValueError, match="non-empty \\(F, 3\\)"):
        RayCaster(np.zeros((0, 3), int))
