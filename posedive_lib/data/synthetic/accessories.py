"""Rigid accessories (backpack, hip bag) attached to posed bodies.

Each accessory is a box placed on the mean rest body and carried by the body vertices under it:
the rigid transform that best maps those anchor vertices from rest to posed (Kabsch) moves the
box. Every body gets every accessory slot so a batch shares one face list; an absent accessory is
collapsed to a point inside the body, where its zero-area faces are never hit.
"""
from __future__ import annotations

import numpy as np
import trimesh

from .appearance import PARTS, BodyCanvas

BACKPACK_EXTENTS = (0.30, 0.14, 0.40)  # width (x), depth (y), height (z) in metres
BAG_EXTENTS = (0.07, 0.20, 0.16)
SLOTS = ("backpack", "bag_left", "bag_right")


def kabsch(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (B, 3, 3) and translation (B, 3) best mapping ``source`` (N, 3) onto each ``target`` (B, N, 3)."""
    mu_s, mu_t = source.mean(0), target.mean(1)
    H = np.einsum("ni,bnj->bij", source - mu_s, target - mu_t[:, None])
    U, _, Vt = np.linalg.svd(H)
    d = np.sign(np.linalg.det(np.transpose(Vt, (0, 2, 1)) @ np.transpose(U, (0, 2, 1))))
    D = np.tile(np.eye(3), (len(target), 1, 1))
    D[:, 2, 2] = d
    R = np.transpose(Vt, (0, 2, 1)) @ D @ np.transpose(U, (0, 2, 1))
    return R, mu_t - np.einsum("bij,j->bi", R, mu_s)


class AccessoryRig:
    """Places the accessory boxes of a batch of identities on their posed bodies."""

    def __init__(self, canvas: BodyCanvas):
        rest = canvas.rest_vertices
        box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
        self.box_vertices, self.box_faces = np.asarray(box.vertices), np.asarray(box.faces)
        part = np.array(PARTS)[canvas.vertex_part]
        x, y, z = rest.T
        torso = part == "torso"
        mid_z = 0.5 * (canvas.waist_z + canvas.shoulder_z)
        back = torso & (y > 0) & (np.abs(x) < 0.14) & (z > canvas.waist_z) & (z < canvas.shoulder_z)
        back_y = np.percentile(y[back], 90)
        self.anchors, self.rest_boxes = {}, {}
        self.anchors["backpack"] = np.flatnonzero(back)
        self.rest_boxes["backpack"] = self._box(BACKPACK_EXTENTS, (0.0, back_y + BACKPACK_EXTENTS[1] / 2, mid_z + 0.02))
        hips = (torso | (part == "upper_leg")) & (z > canvas.hip_z - 0.08) & (z < canvas.waist_z + 0.02)
        for name, side in (("bag_left", 1.0), ("bag_right", -1.0)):
            near = hips & (side * x > 0.05)
            edge = np.percentile(side * x[near], 95)
            self.anchors[name] = np.flatnonzero(near)
            self.rest_boxes[name] = self._box(BAG_EXTENTS, (side * (edge + BAG_EXTENTS[0] / 2), 0.0, canvas.hip_z))
        self.num_body_vertices = len(rest)
        self.rest = rest

    def _box(self, extents, center) -> np.ndarray:
        return self.box_vertices * np.asarray(extents) + np.asarray(center)

    def faces(self, body_faces: np.ndarray) -> np.ndarray:
        """Body faces followed by every slot's box faces."""
        offset, out = self.num_body_vertices, [np.asarray(body_faces)]
        for _ in SLOTS:
            out.append(self.box_faces + offset)
            offset += len(self.box_vertices)
        return np.concatenate(out)

    def vertices(self, posed: np.ndarray, identities) -> np.ndarray:
        """(B, V + boxes, 3): posed body vertices followed by the placed (or collapsed) boxes."""
        posed = np.asarray(posed, np.float64)
        boxes = []
        for name in SLOTS:
            anchors = self.anchors[name]
            R, t = kabsch(self.rest[anchors], posed[:, anchors])
            placed = np.einsum("bij,nj->bni", R, self.rest_boxes[name]) + t[:, None]
            present = np.array([_has(identity, name) for identity in identities])
            hidden = posed[:, anchors].mean(1, keepdims=True)  # inside the body: zero-area faces
            boxes.append(np.where(present[:, None, None], placed, np.broadcast_to(hidden, placed.shape)))
        return np.concatenate([posed] + boxes, axis=1).astype(np.float32)

    def albedo(self, body_albedo: np.ndarray, identity) -> np.ndarray:
        """Face colours of body and boxes (boxes of absent accessories are never seen)."""
        colours = [body_albedo]
        for name in SLOTS:
            colour = identity.backpack if name == "backpack" else identity.bag
            colour = np.zeros(3) if colour is None else colour
            colours.append(np.tile(colour, (len(self.box_faces), 1)))
        return np.concatenate(colours).astype(np.float32)


def _has(identity, slot: str) -> bool:
    if slot == "backpack":
        return identity.backpack is not None
    return identity.bag_side == (1 if slot == "bag_left" else -1)

