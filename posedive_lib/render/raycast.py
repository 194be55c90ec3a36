"""Batched ray casting of triangle meshes with NVIDIA warp (one kernel for CPU and CUDA).

One ray per pixel through its centre; returns z-depth (along the camera axis), smooth normals
in camera axes (OpenCV: x right, y down, z forward; flipped to face the camera), the hit mask
and the face id of every pixel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import warp as wp

from ..paths import configure_caches
from .camera import Cameras


@dataclass
class RayHits:
    depth: np.ndarray  # (B, H, W) float32, 0 where nothing was hit
    normal: np.ndarray  # (B, H, W, 3) float32 unit normals in camera axes, 0 where nothing was hit
    mask: np.ndarray  # (B, H, W) bool
    face_id: np.ndarray  # (B, H, W) int32, -1 where nothing was hit


@wp.kernel
def _cast_rays(
    meshes: wp.array(dtype=wp.uint64),
    origins: wp.array(dtype=wp.vec3),
    pixel_to_ray: wp.array(dtype=wp.mat33),
    world_to_cam: wp.array(dtype=wp.mat33),
    indices: wp.array(dtype=wp.int32),
    vertex_normals: wp.array2d(dtype=wp.vec3),
    depth: wp.array3d(dtype=float),
    normal: wp.array3d(dtype=wp.vec3),
    face_id: wp.array3d(dtype=wp.int32),
):
    b, y, x = wp.tid()
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
    else:
        depth[b, y, x] = 0.0
        normal[b, y, x] = wp.vec3(0.0, 0.0, 0.0)
        face_id[b, y, x] = -1


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """(B, V, 3) area-weighted unit vertex normals."""
    tri = vertices[:, faces]  # (B, F, 3, 3)
    face_n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0])
    normals = torch.zeros_like(vertices)
    for k in range(3):
        normals.index_add_(1, faces[:, k], face_n)
    return torch.nn.functional.normalize(normals, dim=-1, eps=1e-12)


class RayCaster:
    """Renders batches of meshes sharing one face list; warp meshes are reused between calls."""

    def __init__(self, faces, device: str | None = None):
        configure_caches()
        wp.init()
        self.device = device or ("cuda" if wp.is_cuda_available() else "cpu")
        self.faces = torch.as_tensor(np.asarray(faces), dtype=torch.int64)
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or len(self.faces) == 0:
            raise ValueError(f"faces must be a non-empty (F, 3) integer array, got shape {tuple(self.faces.shape)}")
        self._indices = wp.array(self.faces.flatten().to(torch.int32).numpy(), dtype=wp.int32, device=self.device)
        self._meshes: list[wp.Mesh] = []
        self._num_vertices = None

    def _mesh_slots(self, vertices: np.ndarray) -> wp.array:
        n, v = vertices.shape[:2]
        if self._num_vertices not in (None, v):
            self._meshes, self._num_vertices = [], None
        self._num_vertices = v
        for i in range(n):
            points = vertices[i]
            if i < len(self._meshes):
                self._meshes[i].points.assign(points)
                self._meshes[i].refit()
            else:
                self._meshes.append(wp.Mesh(points=wp.array(points, dtype=wp.vec3, device=self.device),
                                            indices=self._indices))
        return wp.array([m.id for m in self._meshes[:n]], dtype=wp.uint64, device=self.device)

    def render(self, vertices, cameras: Cameras) -> RayHits:
        verts = torch.as_tensor(vertices, dtype=torch.float32).cpu()
        if verts.ndim != 3 or verts.shape[-1] != 3:
            raise ValueError(f"vertices must be (B, V, 3), got {tuple(verts.shape)}")
        if len(verts) != len(cameras):
            raise ValueError(f"{len(verts)} meshes but {len(cameras)} cameras: pass one camera per mesh")
        if int(self.faces.max()) >= verts.shape[1]:
            raise ValueError(f"faces index vertex {int(self.faces.max())} but meshes have {verts.shape[1]} vertices")
        B, H, W = len(verts), cameras.height, cameras.width
        normals = vertex_normals(verts, self.faces).numpy()
        pixel_to_ray = np.einsum("bji,bjk->bik", cameras.R, np.linalg.inv(cameras.K))  # R^T K^-1
        dev = self.device
        depth = wp.empty((B, H, W), dtype=float, device=dev)
        normal = wp.empty((B, H, W), dtype=wp.vec3, device=dev)
        face_id = wp.empty((B, H, W), dtype=wp.int32, device=dev)
        wp.launch(_cast_rays, dim=(B, H, W), device=dev, inputs=[
            self._mesh_slots(verts.numpy()),
            wp.array(cameras.centers.astype(np.float32), dtype=wp.vec3, device=dev),
            wp.array(pixel_to_ray.astype(np.float32), dtype=wp.mat33, device=dev),
            wp.array(cameras.R.astype(np.float32), dtype=wp.mat33, device=dev),
            self._indices,
            wp.array(normals, dtype=wp.vec3, device=dev),
            depth, normal, face_id,
        ])
        face = face_id.numpy()
        return RayHits(depth.numpy(), normal.numpy(), face >= 0, face)
