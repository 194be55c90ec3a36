"""Identities of the synthetic Re-ID world: body shape, skin, hair, clothing, shoes, accessories.

Clothing is painted per mesh face from two canonical attributes that every Anny body shares: the
body part of the face (from each vertex's dominant skinning bone) and its position on the mean
body in the rest T-pose. Colours come from a shared palette with jitter, so two identities differ
through combinations of cues (shape, colours, patterns, sleeves, accessories), never a unique code.
Some cues depend on the viewpoint: a chest panel is seen only from the front, a backpack mostly
from behind, a hip bag from one side.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...body.joints import COCO17_INDEX

# 20 clothing colours (sRGB in [0, 1]) shared by all identities; each identity jitters its picks.
PALETTE = np.array([
    [0.08, 0.08, 0.09], [0.92, 0.92, 0.90], [0.50, 0.50, 0.52], [0.15, 0.20, 0.45], [0.35, 0.55, 0.85],
    [0.70, 0.12, 0.12], [0.90, 0.45, 0.15], [0.92, 0.80, 0.20], [0.20, 0.50, 0.25], [0.50, 0.70, 0.35],
    [0.45, 0.25, 0.55], [0.85, 0.55, 0.70], [0.45, 0.30, 0.18], [0.75, 0.65, 0.48], [0.15, 0.40, 0.45],
    [0.30, 0.30, 0.20], [0.60, 0.15, 0.30], [0.25, 0.25, 0.35], [0.85, 0.85, 0.60], [0.10, 0.30, 0.20],
])
SKIN_TONES = np.array([[0.96, 0.80, 0.69], [0.88, 0.67, 0.52], [0.76, 0.55, 0.40], [0.55, 0.38, 0.26],
                       [0.36, 0.24, 0.16]])
HAIR_COLOURS = np.array([[0.05, 0.04, 0.03], [0.25, 0.15, 0.08], [0.45, 0.30, 0.15], [0.80, 0.65, 0.40],
                         [0.55, 0.55, 0.55], [0.50, 0.18, 0.08]])
PATTERNS = ("plain", "stripes", "chest_panel")
PARTS = ("head", "torso", "upper_arm", "lower_arm", "hand", "upper_leg", "lower_leg", "foot")
_BONE_TO_PART = {
    "head": "head", "eye": "head", "neck": "head", "jaw": "head", "tongue": "head", "spine": "torso",
    "clavicle": "torso", "pelvis": "torso", "root": "torso", "breast": "torso", "shoulder": "torso",
    "upperarm": "upper_arm", "lowerarm": "lower_arm", "wrist": "hand", "metacarpal": "hand", "finger": "hand",
    "upperleg": "upper_leg", "lowerleg": "lower_leg", "foot": "foot", "toe": "foot",
}
PHENOTYPE_RANGES = {"gender": (0.0, 1.0), "age": (0.45, 1.0), "muscle": (0.1, 0.9), "weight": (0.1, 0.9),
                    "height": (0.15, 0.95), "proportions": (0.25, 0.75)}


def bone_part(bone_label: str) -> str:
    stem = bone_label.split(".")[0].rstrip("0123456789-")
    if stem not in _BONE_TO_PART:
        raise ValueError(f"no body part for Anny bone {bone_label!r}; add its stem to _BONE_TO_PART")
    return _BONE_TO_PART[stem]


@dataclass(frozen=True)
class Identity:
    pid: int
    phenotypes: dict = field(hash=False)
    skin: np.ndarray = field(hash=False)
    hair: np.ndarray = field(hash=False)
    long_hair: bool = False
    upper: np.ndarray = field(default=None, hash=False)
    upper_second: np.ndarray = field(default=None, hash=False)
    pattern: str = "plain"
    long_sleeves: bool = True
    lower: np.ndarray = field(default=None, hash=False)
    shorts: bool = False
    shoes: np.ndarray = field(default=None, hash=False)
    backpack: np.ndarray | None = field(default=None, hash=False)  # colour, or None
    bag_side: int = 0  # +1 left hip, -1 right hip, 0 none
    bag: np.ndarray | None = field(default=None, hash=False)



def _pick(rng: np.random.Generator, jitter: float = 0.06) -> np.ndarray:
    return np.clip(PALETTE[rng.integers(len(PALETTE))] + rng.normal(0, jitter, 3), 0, 1)


def sample_identity(pid: int, rng: np.random.Generator, backpack_rate: float = 0.3, bag_rate: float = 0.25) -> Identity:
    """A random identity; all of its attributes come from ``rng``."""
    upper = _pick(rng)
    second = _pick(rng)
    while np.abs(second - upper).sum() < 0.5:  # patterns must be visible
        second = _pick(rng)
    has_bag = rng.random() < bag_rate
    return Identity(
        pid=pid,
        phenotypes={k: float(rng.uniform(lo, hi)) for k, (lo, hi) in PHENOTYPE_RANGES.items()},
        skin=np.clip(SKIN_TONES[rng.integers(len(SKIN_TONES))] + rng.normal(0, 0.03, 3), 0, 1),
        hair=np.clip(HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] + rng.normal(0, 0.03, 3), 0, 1),
        long_hair=bool(rng.random() < 0.4), upper=upper, upper_second=second,
        pattern=PATTERNS[rng.integers(len(PATTERNS))], long_sleeves=bool(rng.random() < 0.6),
        lower=_pick(rng), shorts=bool(rng.random() < 0.25), shoes=_pick(rng, 0.03),
        backpack=_pick(rng) if rng.random() < backpack_rate else None,
        bag_side=int(rng.choice([-1, 1])) if has_bag else 0, bag=_pick(rng) if has_bag else None,
    )


class BodyCanvas:
    """Per-face canonical attributes of the Anny mesh, used to paint identities onto it."""

    def __init__(self, body):
        model = body.model
        labels = list(model.bone_labels)
        dominant = model.vertex_bone_indices.gather(1, model.vertex_bone_weights.argmax(1, keepdim=True))[:, 0]
        vertex_part = np.array([PARTS.index(bone_part(labels[i])) for i in dominant.tolist()])
        faces = body.faces.cpu().numpy()
        from ...body.poses import Pose

        rest_body = body([Pose("rest", np.zeros((23, 3)))])
        rest = rest_body.vertices[0].cpu().numpy()
        self.num_faces = len(faces)
        self.vertex_part = vertex_part
        self.part = vertex_part[faces[:, 0]]
        self.center = rest[faces].mean(1)  # (F, 3) position on the mean rest body
        joints = rest_body.joints[0].cpu().numpy()
        self.shoulder_z = joints[[COCO17_INDEX["left_shoulder"], COCO17_INDEX["right_shoulder"]], 2].mean()
        self.hip_z = joints[[COCO17_INDEX["left_hip"], COCO17_INDEX["right_hip"]], 2].mean()
        self.eye_z = joints[COCO17_INDEX["left_eye"], 2]
        self.ear_y = joints[COCO17_INDEX["left_ear"], 1]
        self.waist_z = self.hip_z + 0.3 * (self.shoulder_z - self.hip_z)
        self.rest_vertices = rest

    def albedo(self, identity: Identity) -> np.ndarray:
        """(F, 3) face colours of ``identity``."""
        part = np.array(PARTS)[self.part]
        x, y, z = self.center.T
        colour = np.tile(identity.skin, (self.num_faces, 1))
        torso = part == "torso"
        upper = (torso & (z >= self.waist_z) & (z < self.shoulder_z + 0.06)) | (part == "upper_arm")
        if identity.long_sleeves:
            upper |= part == "lower_arm"
        lower = (torso & (z < self.waist_z)) | (part == "upper_leg")
        if not identity.shorts:
            lower |= part == "lower_leg"
        colour[upper] = identity.upper
        if identity.pattern == "stripes":
            band = np.floor((z - self.waist_z) / 0.06).astype(int) % 2 == 1
            colour[upper & band & (part != "lower_arm")] = identity.upper_second
        elif identity.pattern == "chest_panel":  # front only: a viewpoint-dependent cue
            panel = torso & (y < -0.02) & (z > self.waist_z + 0.08) & (z < self.shoulder_z - 0.04) & (np.abs(x) < 0.12)
            colour[panel] = identity.upper_second
        colour[lower] = identity.lower
        colour[part == "foot"] = identity.shoes
        head = part == "head"
        hair = head & ((z > self.eye_z + 0.035) | (y > self.ear_y + 0.01))
        if identity.long_hair:
            hair |= (head | torso) & (y > 0.0) & (z > self.shoulder_z - 0.12)
        colour[hair] = identity.hair
        if identity.bag_side:  # shoulder strap from one shoulder to the opposite hip
            s = identity.bag_side
            strap = torso & (np.abs((-s * x) * 0.9 + (z - self.waist_z) - 0.1) < 0.03) & (z > self.hip_z)
            colour[strap] = identity.bag * 0.7
        return colour.astype(np.float32)
