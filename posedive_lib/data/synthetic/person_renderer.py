"""Renders identities as Re-ID crops: posed Anny + accessories, ray cast, shaded, degraded per camera.

Rendering happens at ``supersample`` times the crop size and is box-filtered down (default 1:
every camera's optics blur, sigma 0.3-0.9 px, already softens edges; 2 anti-aliases at 0.6x the speed). Shading is Lambertian with the light at the camera. Each camera of the network has its
own colour gain and offset, blur, noise and effective resolution; each image gets its own
desaturated, noisy background.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageFilter

from ...body.anny_body import AnnyBody
from ...body.poses import Pose
from ...render.camera import check_image_size, orbit_cameras
from ...render.conditions import draw_skeleton, encode_depth, encode_normal
from ...render.pipeline import ConditionMaps
from ...render.raycast import RayCaster
from ...render.viewpoint import body_viewpoint
from .accessories import AccessoryRig
from .appearance import BodyCanvas, Identity


@dataclass(frozen=True)
class CameraLook:
    """Appearance of one camera of the network."""

    gain: tuple = (1.0, 1.0, 1.0)
    offset: float = 0.0
    blur: float = 0.0  # Gaussian sigma in output pixels
    noise: float = 0.0  # pixel noise standard deviation, [0, 1] scale
    resolution: float = 1.0  # effective resolution factor (< 1: captured smaller and upscaled)

    @staticmethod
    def sample(rng: np.random.Generator) -> "CameraLook":
        return CameraLook(gain=tuple(np.round(rng.uniform(0.8, 1.2, 3), 3)), offset=float(rng.uniform(-0.06, 0.06)),
                          blur=float(rng.uniform(0.3, 0.9)), noise=float(rng.uniform(0.01, 0.035)),
                          resolution=float(rng.choice([1.0, 1.0, 0.75, 0.6])))


STUDIO = CameraLook()


@dataclass
class Shot:
    """One image to render: who, in which pose, from where, through which camera."""

    identity: Identity
    pose: Pose
    elevation: float
    azimuth: float
    look: CameraLook
    seed: int  # background and noise


@dataclass
class RenderedBatch:
    images: np.ndarray  # (B, H, W, 3) uint8
    keypoints: np.ndarray  # (B, 17, 3): u, v in output pixels and visibility (1 visible, 0 occluded or outside)
    elevation: np.ndarray  # measured from the posed torso
    azimuth: np.ndarray
    conditions: ConditionMaps | None = None  # body-only depth, normal and skeleton in the same cameras


def background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float: a blurry random colour field, desaturated, with a darker floor band."""
    grid = rng.uniform(0.15, 0.85, (4, 3, 3))
    grey = grid.mean(-1, keepdims=True)
    grid = grey + rng.uniform(0.1, 0.5) * (grid - grey)
    image = np.asarray(Image.fromarray((grid * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR), np.float32) / 255
    floor = int(height * rng.uniform(0.7, 0.9))
    image[floor:] *= rng.uniform(0.6, 0.9)
    return image


class PersonRenderer:
    """Identities x poses x viewpoints -> Re-ID crops (default 64 x 128)."""

    def __init__(self, width: int = 64, height: int = 128, supersample: int = 1, distance: float = 6.0,
                 margin: float = 0.05, body: AnnyBody | None = None):
        check_image_size(width, height)
        if supersample < 1:
            raise ValueError(f"supersample must be a positive integer, got {supersample}")
        self.width, self.height, self.ss = int(width), int(height), int(supersample)
        self.distance, self.margin = distance, margin
        self.body = body or AnnyBody()
        self.canvas = BodyCanvas(self.body)
        self.rig = AccessoryRig(self.canvas)
        faces = self.rig.faces(self.body.faces.cpu().numpy())
        template = self.rig.vertices(self.canvas.rest_vertices[None], [_NO_ACCESSORY])[0]
        self.caster = RayCaster(faces, template=template)
        self._body_caster: RayCaster | None = None  # body without accessories, for condition maps
        self._albedo: dict[tuple, np.ndarray] = {}

    def albedo(self, identity: Identity) -> np.ndarray:
        """Face colours of body and accessories, cached per identity (pid and clothing colours)."""
        key = (identity.pid, identity.upper.tobytes(), identity.lower.tobytes(), identity.skin.tobytes())
        if key not in self._albedo:
            self._albedo[key] = self.rig.albedo(self.canvas.albedo(identity), identity)
        return self._albedo[key]

    def render(self, shots: Sequence[Shot], conditions: bool = False) -> RenderedBatch:
        """Render ``shots``; with ``conditions`` also their condition maps, framed exactly like the images.

        Condition maps show the body alone (no backpack or bag), so accessories have to come from the
        reference image when a generator is trained on them.
        """
        framed = self._frame(shots)
        hits = self.caster.render(framed.vertices, framed.cameras)
        colour, alpha = self._shade([s.identity for s in shots], hits.face_id, hits.normal, hits.mask)
        H, W = self.height, self.width
        images = np.empty((len(shots), H, W, 3), np.uint8)
        keypoints = np.zeros((len(shots), 17, 3), np.float32)
        for b, shot in enumerate(shots):
            images[b] = self._finish(shot, colour[b], alpha[b])
            keypoints[b] = self._keypoints(framed.uvz[b], hits.depth[b])
        maps = self._conditions(framed, shots) if conditions else None
        return RenderedBatch(images, keypoints, framed.elevation, framed.azimuth, maps)

    def render_conditions(self, shots: Sequence[Shot]) -> ConditionMaps:
        """The condition maps of ``render(shots, conditions=True)`` without ray casting and shading the images."""
        return self._conditions(self._frame(shots), shots)

    def _frame(self, shots: Sequence[Shot]) -> "_Framed":
        """Pose the bodies, dress them with accessories and frame each in its orbit camera."""
        if not shots:
            raise ValueError("no shots to render: pass at least one Shot")
        identities = [s.identity for s in shots]
        shape = {k: torch.tensor([i.phenotypes[k] for i in identities], dtype=torch.float32)
                 for k in identities[0].phenotypes}
        posed = self.body([s.pose for s in shots], shape)
        body_vertices = posed.vertices.cpu().numpy()
        vertices = self.rig.vertices(body_vertices, identities)
        elevation = np.array([s.elevation for s in shots], float)
        azimuth = np.array([s.azimuth for s in shots], float)
        ss = self.ss
        cameras = orbit_cameras(vertices, elevation, azimuth, self.distance, self.width * ss, self.height * ss,
                                self.margin)
        joints = posed.joints.cpu().numpy().astype(float)
        measured_el, measured_az = body_viewpoint(joints, cameras.centers)
        return _Framed(body_vertices, vertices, cameras, cameras.project(joints), measured_el, measured_az)

    def _conditions(self, framed: "_Framed", shots: Sequence[Shot]) -> ConditionMaps:
        if self._body_caster is None:
            self._body_caster = RayCaster(self.body.faces.cpu().numpy(), template=self.canvas.rest_vertices)
        ss = self.ss
        hits = self._body_caster.render(framed.body_vertices, framed.cameras)
        depth, normal, mask = hits.depth[:, ::ss, ::ss], hits.normal[:, ::ss, ::ss], hits.mask[:, ::ss, ::ss]
        keypoints = (framed.uvz / np.array([ss, ss, 1.0])).astype(np.float32)
        return ConditionMaps(depth=encode_depth(depth, mask), normal=encode_normal(normal, mask),
                             skeleton=draw_skeleton(keypoints, self.width, self.height), mask=mask,
                             keypoints=keypoints, elevation=framed.elevation, azimuth=framed.azimuth,
                             pose_ids=[s.pose.pose_id for s in shots])

    def _shade(self, identities, face_id, normal, mask) -> tuple[np.ndarray, np.ndarray]:
        """Lambert-shaded colour (premultiplied by coverage) and coverage, box-filtered to the crop size."""
        table = np.concatenate([self.albedo(i) for i in identities])
        faces_per_body = len(table) // len(identities)
        index = np.maximum(face_id, 0) + faces_per_body * np.arange(len(identities))[:, None, None]
        shade = np.clip(normal[..., 2], -1, 0)
        shade *= -0.65
        shade += 0.35
        shade *= mask
        colour = table[index]
        colour *= shade[..., None]
        ss = self.ss
        alpha = mask.astype(np.float32)
        colour_sum, alpha_sum = 0, 0
        for dy in range(ss):  # box filter as a sum of strided views: faster than mean over axes
            for dx in range(ss):
                colour_sum = colour_sum + colour[:, dy::ss, dx::ss]
                alpha_sum = alpha_sum + alpha[:, dy::ss, dx::ss]
        return colour_sum / ss ** 2, alpha_sum[..., None] / ss ** 2

    def _finish(self, shot: Shot, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
        """Composite over a background and apply the camera's look."""
        W, H = self.width, self.height
        rng = np.random.default_rng(shot.seed)
        look = shot.look
        image = colour + (1 - alpha) * background(rng, W, H)
        image = image * np.asarray(look.gain, np.float32) + look.offset
        pil = Image.fromarray((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8))
        if look.resolution < 1:
            small = (max(1, round(W * look.resolution)), max(1, round(H * look.resolution)))
            pil = pil.resize(small, Image.BILINEAR).resize((W, H), Image.BILINEAR)
        if look.blur > 0.05:
            pil = pil.filter(ImageFilter.GaussianBlur(look.blur))
        out = np.asarray(pil, np.float32) + rng.normal(0, 255 * look.noise, (H, W, 3))
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def _keypoints(self, uvz: np.ndarray, depth: np.ndarray) -> np.ndarray:
        ss, Hs, Ws = self.ss, depth.shape[0], depth.shape[1]
        u, v, z = uvz.T
        inside = (u >= 0) & (u < Ws) & (v >= 0) & (v < Hs) & (z > 0)
        ui, vi = np.clip(u.astype(int), 0, Ws - 1), np.clip(v.astype(int), 0, Hs - 1)
        seen = depth[vi, ui]
        visible = inside & (seen > 0) & (seen > z - 0.15)  # nothing nearer than the body around the joint
        return np.stack([u / ss, v / ss, visible.astype(np.float32)], -1)


@dataclass
class _Framed:
    """Posed bodies (without and with accessories) in their cameras, with projected joints."""

    body_vertices: np.ndarray
    vertices: np.ndarray
    cameras: object
    uvz: np.ndarray  # joints projected: u, v in render pixels and depth
    elevation: np.ndarray  # measured from the posed torso
    azimuth: np.ndarray


class _NoAccessory:
    backpack = None
    bag_side = 0
    bag = None


_NO_ACCESSORY = _NoAccessory()
