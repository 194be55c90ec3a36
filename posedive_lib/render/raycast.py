"""Batched ray casting of triangle meshes with NVIDIA warp (one kernel for CPU and CUDA).

One ray per pixel through its centre; returns z-depth (along the camera axis), smooth normals
in camera axes (OpenCV: x right, y down, z forward; flipped to face the camera), the hit mask
and the face id of every pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import warp as wp

from ..paths import configure_caches
from .camera import Cameras


@dataclass
class RayHits:
    depth: np.ndarray  # (B, H, W) float32, 0 where nothing was hit
    normal: np.ndarray  # (B, H, W, 3) float32 unit normals in camera axes, 0 where nothing was hit
    mask: np.ndarray  # (B, H, W) bool
    face_id: np.ndarray  # (B, H, W) int32, -1 where nothing was hit


TILE = 4  # pixels per side of the occupancy tiles used to skip rays that cannot hit the mesh


@wp.kernel
def _prepare_faces(
    points: wp.array2d(dtype=wp.vec3),
    indices: wp.array(dtype=wp.int32),
    world_to_cam: wp.array(dtype=wp.mat33),
    translation: wp.array(dtype=wp.vec3),
    intrinsics: wp.array(dtype=wp.mat33),
    normals: wp.array2d(dtype=wp.vec3),
    occupancy: wp.array3d(dtype=wp.uint8),
):
    """Per face: add its area-weighted normal to its vertices; mark the tiles its projection covers."""
    b, f = wp.tid()
    i0, i1, i2 = indices[f * 3], indices[f * 3 + 1], indices[f * 3 + 2]
    p0, p1, p2 = points[b, i0], points[b, i1], points[b, i2]
    n = wp.cross(p1 - p0, p2 - p0)
    wp.atomic_add(normals, b, i0, n)
    wp.atomic_add(normals, b, i1, n)
    wp.atomic_add(normals, b, i2, n)
    R, t, K = world_to_cam[b], translation[b], intrinsics[b]
    q0, q1, q2 = K * (R * p0 + t), K * (R * p1 + t), K * (R * p2 + t)
    tiles_y, tiles_x = occupancy.shape[1], occupancy.shape[2]
    x0, x1, y0, y1 = int(0), tiles_x - 1, int(0), tiles_y - 1
    if wp.min(wp.min(q0[2], q1[2]), q2[2]) > 1.0e-6:  # in front of the camera: bound its projection
        u0 = wp.min(wp.min(q0[0] / q0[2], q1[0] / q1[2]), q2[0] / q2[2])
        u1 = wp.max(wp.max(q0[0] / q0[2], q1[0] / q1[2]), q2[0] / q2[2])
        v0 = wp.min(wp.min(q0[1] / q0[2], q1[1] / q1[2]), q2[1] / q2[2])
        v1 = wp.max(wp.max(q0[1] / q0[2], q1[1] / q1[2]), q2[1] / q2[2])
        if u1 < 0.0 or v1 < 0.0 or u0 > float(tiles_x * TILE) or v0 > float(tiles_y * TILE):
            return
        x0 = wp.max(int(wp.floor(u0)) // TILE, 0)
        x1 = wp.min(int(wp.floor(u1)) // TILE, tiles_x - 1)
        y0 = wp.max(int(wp.floor(v0)) // TILE, 0)
        y1 = wp.min(int(wp.floor(v1)) // TILE, tiles_y - 1)
    for ty in range(y0, y1 + 1):
        for tx in range(x0, x1 + 1):
            occupancy[b, ty, tx] = wp.uint8(1)


@wp.kernel
def _normalize_rows(vectors: wp.array2d(dtype=wp.vec3)):
    b, v = wp.tid()
    vectors[b, v] = wp.normalize(vectors[b, v])


@wp.kernel
def _cast_rays(
    meshes: wp.array(dtype=wp.uint64),
    origins: wp.array(dtype=wp.vec3),
    pixel_to_ray: wp.array(dtype=wp.mat33),
    world_to_cam: wp.array(dtype=wp.mat33),
    indices: wp.array(dtype=wp.int32),
    vertex_normals: wp.array2d(dtype=wp.vec3),
    occupancy: wp.array3d(dtype=wp.uint8),
    depth: wp.array3d(dtype=float),
    normal: wp.array3d(dtype=wp.vec3),
    face_id: wp.array3d(dtype=wp.int32),
):
    b, y, x = wp.tid()
    depth[b, y, x] = 0.0
    normal[b, y, x] = wp.vec3(0.0, 0.0, 0.0)
    face_id[b, y, x] = -1
    if occupancy[b, y // TILE, x // TILE] == wp.uint8(0):
        return
    ray = wp.normalize(pixel_to_ray[b] * wp.vec3(float(x) + 0.5, float(y) + 0.5, 1.0))
    hit = wp.mesh_query_ray(meshes[b], origins[b], ray, 1.0e6)
    if hit.result:
        R = world_to_cam[b]
        ray_cam = R * ray
        depth[b, y, x] = hit.t * ray_cam[2]
        f = hit.face
        n = (vertex_normals[b, indices[f * 3]] * hit.u + vertex_normals[b, indices[f * 3 + 1]] * hit.v
             + vertex_normals[b, indices[f * 3 + 2]] * (1.0 - hit.u - hit.v))
        n_cam = wp.normalize(R * n)
        if wp.dot(n_cam, ray_cam) > 0.0:
            n_cam = -n_cam
        normal[b, y, x] = n_cam
        face_id[b, y, x] = f


def vertex_normals(vertices, faces) -> np.ndarray:
    """(B, V, 3) area-weighted unit vertex normals (the renderer's own kernel, for inspection)."""
    verts = np.ascontiguousarray(np.asarray(vertices, np.float32))
    faces = np.asarray(faces)
    B, F = len(verts), len(faces)
    normals = wp.zeros(verts.shape[:2], dtype=wp.vec3, device="cpu")
    eye = np.tile(np.eye(3, dtype=np.float32), (B, 1, 1))
    wp.launch(_prepare_faces, dim=(B, F), device="cpu", inputs=[
        wp.array(verts, dtype=wp.vec3, device="cpu"), wp.array(faces.astype(np.int32).ravel(), dtype=wp.int32, device="cpu"),
        wp.array(eye, dtype=wp.mat33, device="cpu"), wp.array(np.ones((B, 3), np.float32), dtype=wp.vec3, device="cpu"),
        wp.array(eye, dtype=wp.mat33, device="cpu"), normals, wp.zeros((B, 1, 1), dtype=wp.uint8, device="cpu")])
    wp.launch(_normalize_rows, dim=verts.shape[:2], device="cpu", inputs=[normals])
    return normals.numpy()


class RayCaster:
    """Renders batches of meshes sharing one face list; warp meshes are reused between calls.

    Each mesh slot's BVH is built once, on ``template`` vertices when given (a rest pose with
    limbs apart groups triangles by body part, so refitting it to any pose stays tight), and
    refitted to every new batch. Rays through image tiles that no triangle projects onto are
    skipped.
    """

    def __init__(self, faces, template=None, device: str | None = None, skip_empty_tiles: bool = True):
        configure_caches()
        wp.init()
        self.device = device or ("cuda" if wp.is_cuda_available() else "cpu")
        self.faces = np.asarray(faces).astype(np.int64)
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise ValueError(f"faces must be a non-empty (F, 3) integer array, got shape {self.faces.shape}")
        self.skip_empty_tiles = skip_empty_tiles
        self.template = None if template is None else np.asarray(template, np.float32)
        self._indices = wp.array(self.faces.astype(np.int32).ravel(), dtype=wp.int32, device=self.device)
        self._meshes: list[wp.Mesh] = []

    def _mesh_slots(self, vertices: np.ndarray) -> wp.array:
        n, v = vertices.shape[:2]
        if self._meshes and self._meshes[0].points.shape[0] != v:
            self._meshes = []
        base = self.template if self.template is not None and len(self.template) == v else None
        while len(self._meshes) < n:
            points = vertices[len(self._meshes)] if base is None else base
            self._meshes.append(wp.Mesh(points=wp.array(points, dtype=wp.vec3, device=self.device),
                                        indices=self._indices, bvh_constructor="sah", bvh_leaf_size=4))
        for mesh, points in zip(self._meshes, vertices):
            mesh.points.assign(points)
            mesh.refit()
        return wp.array([m.id for m in self._meshes[:n]], dtype=wp.uint64, device=self.device)

    def render(self, vertices, cameras: Cameras) -> RayHits:
        verts = np.ascontiguousarray(np.asarray(vertices.cpu() if hasattr(vertices, "cpu") else vertices, np.float32))
        if verts.ndim != 3 or verts.shape[-1] != 3:
            raise ValueError(f"vertices must be (B, V, 3), got {verts.shape}")
        if len(verts) != len(cameras):
            raise ValueError(f"{len(verts)} meshes but {len(cameras)} cameras: pass one camera per mesh")
        if int(self.faces.max()) >= verts.shape[1]:
            raise ValueError(f"faces index vertex {int(self.faces.max())} but meshes have {verts.shape[1]} vertices")
        B, H, W, dev = len(verts), cameras.height, cameras.width, self.device
        R = wp.array(cameras.R.astype(np.float32), dtype=wp.mat33, device=dev)
        points = wp.array(verts, dtype=wp.vec3, device=dev)
        normals = wp.zeros((B, verts.shape[1]), dtype=wp.vec3, device=dev)
        occupancy = wp.zeros((B, -(-H // TILE), -(-W // TILE)), dtype=wp.uint8, device=dev)
        wp.launch(_prepare_faces, dim=(B, len(self.faces)), device=dev, inputs=[
            points, self._indices, R, wp.array(cameras.t.astype(np.float32), dtype=wp.vec3, device=dev),
            wp.array(cameras.K.astype(np.float32), dtype=wp.mat33, device=dev), normals, occupancy])
        wp.launch(_normalize_rows, dim=(B, verts.shape[1]), device=dev, inputs=[normals])
        if not self.skip_empty_tiles:
            occupancy.fill_(1)
        pixel_to_ray = np.transpose(cameras.R, (0, 2, 1)) @ np.linalg.inv(cameras.K)  # R^T K^-1
        depth = wp.empty((B, H, W), dtype=float, device=dev)
        normal = wp.empty((B, H, W), dtype=wp.vec3, device=dev)
        face_id = wp.empty((B, H, W), dtype=wp.int32, device=dev)
        wp.launch(_cast_rays, dim=(B, H, W), device=dev, inputs=[
            self._mesh_slots(verts), wp.array(cameras.centers.astype(np.float32), dtype=wp.vec3, device=dev),
            wp.array(pixel_to_ray.astype(np.float32), dtype=wp.mat33, device=dev), R, self._indices, normals,
            occupancy, depth, normal, face_id])
        face = face_id.numpy()
        return RayHits(depth.numpy(), normal.numpy(), face >= 0, face)
