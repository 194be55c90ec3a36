"""Pose sources behind one interface, all in SMPL's pose convention.

A :class:`Pose` holds SMPL's 23 body-joint rotations (axis-angle, radians, each relative to its
parent, rest = T-pose, axes x = body left, y = up, z = forward) and a global orientation.
Every body model consumes this convention (SMPL directly, Anny through a retargeting map), so
every pose source works with every body model.

Sources (each index gives the same pose every time, with a stable ``pose_id``):
- :class:`GaitPoses`: in-domain pedestrian poses, a parametric walking cycle.
- :class:`StandingPoses`: in-domain standing poses with small variations.
- :class:`ExternalPoseLibrary`: diverse poses (dance, arms raised, crouch, kick, bend, sit,
  jump, turn) with randomised joint angles clipped to anatomical limits; the stand-in for
  the paper's dance-video poses.
- :class:`AmassPoses`: SMPL pose sequences in the AMASS ``.npz`` layout, for users who have them.
"""
from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy.spatial.transform import Rotation

from .joints import SMPL24, SMPL24_INDEX


@dataclass(frozen=True)
class Pose:
    pose_id: str
    body_pose: np.ndarray  # (23, 3) axis-angle of SMPL joints 1..23
    global_orient: np.ndarray = field(default_factory=lambda: np.zeros(3))  # (3,)
    family: str = ""

    def full(self) -> np.ndarray:
        """(24, 3) axis-angle, the global orientation first, as in SMPL's pose vector."""
        return np.concatenate([np.asarray(self.global_orient, float)[None], np.asarray(self.body_pose, float)])


def stack_poses(poses: Sequence[Pose]) -> np.ndarray:
    """(B, 24, 3) axis-angle array of a batch of poses."""
    if len(poses) == 0:
        raise ValueError("empty pose batch: pass at least one Pose")
    return np.stack([p.full() for p in poses]).astype(np.float32)


# --- joint angles in degrees, as intrinsic-free XYZ Euler angles about SMPL's axes -------------
# Signs, for the LEFT side (the right side is mirrored): hip/shoulder x<0 swings the limb
# forward; knee x>0 bends it; spine x>0 bends forward; shoulder z>0 raises the arm from T-pose,
# z<0 lowers it; shoulder y<0 brings the arm forward; elbow y<0 flexes it.
ANATOMICAL_LIMITS_DEG = {
    "hip": ((-120, 35), (-40, 40), (-25, 50)),
    "knee": ((0, 150), (-5, 5), (-5, 5)),
    "ankle": ((-35, 45), (-15, 15), (-20, 20)),
    "spine": ((-15, 30), (-25, 25), (-15, 15)),
    "neck": ((-30, 35), (-40, 40), (-25, 25)),
    "head": ((-20, 25), (-35, 35), (-20, 20)),
    "collar": ((-10, 10), (-15, 15), (-10, 20)),
    "shoulder": ((-70, 70), (-110, 45), (-90, 85)),
    "elbow": ((-5, 5), (-150, 0), (-5, 5)),
    "wrist": ((-45, 45), (-30, 30), (-60, 60)),
}
_LIMIT_GROUP = {
    "left_hip": "hip", "right_hip": "hip", "left_knee": "knee", "right_knee": "knee",
    "left_ankle": "ankle", "right_ankle": "ankle", "spine1": "spine", "spine2": "spine",
    "spine3": "spine", "neck": "neck", "head": "head", "left_collar": "collar",
    "right_collar": "collar", "left_shoulder": "shoulder", "right_shoulder": "shoulder",
    "left_elbow": "elbow", "right_elbow": "elbow", "left_wrist": "wrist", "right_wrist": "wrist",
}


def _mirror_name(name: str) -> str:
    if name.startswith("left_"):
        return "right_" + name[5:]
    if name.startswith("right_"):
        return "left_" + name[6:]
    return name


def _limits_for(name: str) -> np.ndarray:
    """(3, 2) Euler limits in degrees for a joint, mirrored (y, z flipped) for the right side."""
    lim = np.array(ANATOMICAL_LIMITS_DEG[_LIMIT_GROUP[name]], float)
    if name.startswith("right_"):
        lim[1:] = -lim[1:, ::-1]
    return lim


def euler_pose(angles_deg: dict[str, Sequence[float]], pose_id: str, family: str,
               symmetric: bool = False, clip: bool = True) -> Pose:
    """Build a :class:`Pose` from XYZ Euler angles (degrees) per SMPL joint name.

    With ``symmetric`` each ``left_*`` entry is mirrored onto ``right_*`` unless given.
    Angles are clipped to :data:`ANATOMICAL_LIMITS_DEG` when ``clip`` is set.
    """
    angles = {k: np.asarray(v, float) for k, v in angles_deg.items()}
    if symmetric:
        for name, value in list(angles.items()):
            other = _mirror_name(name)
            if other != name and other not in angles:
                angles[other] = value * np.array([1.0, -1.0, -1.0])
    body = np.zeros((23, 3))
    for name, value in angles.items():
        if name not in SMPL24_INDEX or name == "pelvis":
            raise ValueError(f"unknown SMPL body joint {name!r}; use one of {SMPL24[1:]}")
        if clip and name in _LIMIT_GROUP:
            lim = _limits_for(name)
            value = np.clip(value, lim[:, 0], lim[:, 1])
        body[SMPL24_INDEX[name] - 1] = Rotation.from_euler("xyz", value, degrees=True).as_rotvec()
    return Pose(pose_id=pose_id, body_pose=body, family=family)


class PoseSource(ABC):
    """A deterministic, indexable collection of poses."""

    name: str

    def __init__(self, seed: int = 0, size: int = 1000):
        if size <= 0:
            raise ValueError(f"pose source size must be positive, got {size}")
        if seed < 0:
            raise ValueError(f"pose source seed must be non-negative, got {seed}")
        self.seed = int(seed)
        self.size = int(size)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Pose:
        if not 0 <= index < self.size:
            raise IndexError(f"pose index {index} out of range for {self.name} of size {self.size}")
        rng = np.random.default_rng([self.seed, zlib.crc32(self.name.encode()), index])
        return self._make(index, rng, f"{self.name}:{self.seed}:{index:06d}")

    def sample(self, n: int, rng: np.random.Generator) -> list[Pose]:
        """``n`` poses drawn uniformly (with replacement) from this source."""
        return [self[int(i)] for i in rng.integers(0, self.size, size=n)]

    def __iter__(self) -> Iterable[Pose]:
        return (self[i] for i in range(self.size))

    @abstractmethod
    def _make(self, index: int, rng: np.random.Generator, pose_id: str) -> Pose: ...


class GaitPoses(PoseSource):
    """A parametric walking cycle: index -> phase, with per-index jitter of stride and arm swing."""

    name = "gait"

    def _make(self, index, rng, pose_id):
        phase = 2 * np.pi * ((index * 0.61803398875) % 1.0)  # low-discrepancy phases
        stride = rng.uniform(18, 30)
        swing = rng.uniform(10, 25)
        angles = {}
        for side, offset in (("left", 0.0), ("right", np.pi)):
            s = np.sin(phase + offset)
            hip_flex = -stride * s  # leg forward when s > 0
            knee = 5 + 45 * max(0.0, np.sin(phase + offset + 0.9)) ** 2
            sign = 1.0 if side == "left" else -1.0
            angles[f"{side}_hip"] = (hip_flex, 0, sign * 3)
            angles[f"{side}_knee"] = (knee, 0, 0)
            angles[f"{side}_ankle"] = (-0.3 * hip_flex, 0, 0)
            # Arms hang (z = -75 deg from T-pose); the swing is added below.
            angles[f"{side}_shoulder"] = (0, 0, sign * -75 + rng.normal(0, 2))
            angles[f"{side}_elbow"] = (0, -sign * (12 + 12 * max(0.0, -s)), 0)
        pose = euler_pose(angles, pose_id, "gait")
        # Arm swing about the body's left axis, applied after lowering the arm (world-frame order).
        body = pose.body_pose.copy()
        for side, offset in (("left", 0.0), ("right", np.pi)):
            s = np.sin(phase + offset)
            j = SMPL24_INDEX[f"{side}_shoulder"] - 1
            swing_rot = Rotation.from_euler("x", swing * s, degrees=True)  # arm back when leg forward
            body[j] = (swing_rot * Rotation.from_rotvec(body[j])).as_rotvec()
        torso = Rotation.from_euler("y", 4 * np.sin(phase), degrees=True).as_rotvec()
        body[SMPL24_INDEX["spine2"] - 1] = torso
        return Pose(pose_id, body, family="gait")


class StandingPoses(PoseSource):
    """Standing poses: arms down, weight shifts, head turns, hands together or on hips."""

    name = "standing"

    def _make(self, index, rng, pose_id):
        shift = rng.normal(0, 3)
        angles = {
            "left_hip": (rng.normal(0, 3), 0, 3 + shift), "right_hip": (rng.normal(0, 3), 0, -3 + shift),
            "left_knee": (abs(rng.normal(0, 5)), 0, 0), "right_knee": (abs(rng.normal(0, 5)), 0, 0),
            "neck": (rng.normal(5, 5), rng.normal(0, 12), 0), "head": (rng.normal(0, 5), rng.normal(0, 10), 0),
            "spine2": (rng.normal(0, 3), rng.normal(0, 4), rng.normal(0, 2)),
        }
        variant = rng.integers(0, 3)
        for side, sign in (("left", 1.0), ("right", -1.0)):
            if variant == 0:  # arms hanging
                angles[f"{side}_shoulder"] = (0, rng.normal(0, 6), sign * rng.uniform(-82, -68))
                angles[f"{side}_elbow"] = (0, -sign * rng.uniform(0, 25), 0)
            elif variant == 1:  # hands in front (phone, bag strap)
                angles[f"{side}_shoulder"] = (0, -sign * rng.uniform(15, 35), sign * rng.uniform(-75, -60))
                angles[f"{side}_elbow"] = (0, -sign * rng.uniform(60, 100), 0)
            else:  # hands on hips
                angles[f"{side}_shoulder"] = (0, sign * rng.uniform(5, 20), sign * rng.uniform(-60, -45))
                angles[f"{side}_elbow"] = (0, -sign * rng.uniform(80, 110), 0)
        return euler_pose(angles, pose_id, "standing")


# Templates of the external library (left side; mirrored unless a right-side entry is given).
_EXTERNAL_TEMPLATES = {
    "arms_raised": {"left_shoulder": (0, -10, 70), "left_elbow": (0, -15, 0), "neck": (-10, 0, 0)},
    "crouch": {"left_hip": (-100, 0, 15), "left_knee": (120, 0, 0), "left_ankle": (30, 0, 0),
               "spine2": (20, 0, 0), "left_shoulder": (0, -40, -60), "left_elbow": (0, -40, 0)},
    "kick": {"left_hip": (-75, 0, 5), "left_knee": (20, 0, 0), "right_hip": (10, 0, 0),
             "left_shoulder": (0, 0, -20), "right_shoulder": (0, -30, 10), "spine2": (-10, 0, 0)},
    "bend": {"spine1": (25, 0, 0), "spine2": (25, 0, 0), "spine3": (20, 0, 0), "left_hip": (-25, 0, 5),
             "left_shoulder": (0, -50, -75), "left_elbow": (0, -10, 0)},
    "sit": {"left_hip": (-90, 0, 8), "left_knee": (90, 0, 0), "left_shoulder": (0, -30, -70),
            "left_elbow": (0, -60, 0)},
    "jump": {"left_hip": (-35, 0, 10), "left_knee": (70, 0, 0), "left_ankle": (-25, 0, 0),
             "left_shoulder": (0, -20, 60), "left_elbow": (0, -20, 0)},
    "turn": {"spine1": (0, 20, 0), "spine2": (0, 20, 0), "spine3": (0, 15, 0), "neck": (0, 25, 0),
             "left_shoulder": (0, -40, -20), "right_shoulder": (0, 30, -10), "right_hip": (-30, 0, 10),
             "right_knee": (40, 0, 0)},
    "dance": {},
}
EXTERNAL_FAMILIES = tuple(_EXTERNAL_TEMPLATES)


class ExternalPoseLibrary(PoseSource):
    """Diverse out-of-domain poses: a family template plus random joint angles within limits."""

    name = "external"

    def __init__(self, seed: int = 0, size: int = 2000, families: Sequence[str] = EXTERNAL_FAMILIES,
                 jitter_deg: float = 12.0):
        super().__init__(seed, size)
        if not families:
            raise ValueError(f"no pose families given; choose from {EXTERNAL_FAMILIES}")
        unknown = set(families) - set(EXTERNAL_FAMILIES)
        if unknown:
            raise ValueError(f"unknown pose families {sorted(unknown)}; choose from {EXTERNAL_FAMILIES}")
        self.families = tuple(families)
        if not float(jitter_deg) >= 0:  # NaN fails too
            raise ValueError(f"jitter_deg is a standard deviation in degrees, >= 0, got {jitter_deg}")
        self.jitter_deg = float(jitter_deg)

    def _make(self, index, rng, pose_id):
        family = self.families[index % len(self.families)]
        template = dict(_EXTERNAL_TEMPLATES[family])
        if family == "dance":  # anything within limits, asymmetric
            for name in _LIMIT_GROUP:
                lim = _limits_for(name)
                template[name] = rng.uniform(lim[:, 0], lim[:, 1]) * 0.6
        elif rng.random() < 0.5:  # mirror the whole template half of the time
            template = {_mirror_name(k): (v[0], -v[1], -v[2]) for k, v in template.items()}
        angles = {}
        for name in _LIMIT_GROUP:
            base = template.get(name)
            if base is None and _mirror_name(name) in template and family != "dance":
                v = template[_mirror_name(name)]
                base = (v[0], -v[1], -v[2])
            if base is None:
                base = (0, 0, -75 if name == "left_shoulder" else 75 if name == "right_shoulder" else 0)
            angles[name] = np.asarray(base, float) + rng.normal(0, self.jitter_deg, 3)
        return euler_pose(angles, f"{pose_id}:{family}", family)


class AmassPoses(PoseSource):
    """SMPL poses from AMASS-layout ``.npz`` files (``poses``, ``betas``, ``trans``).

    ``poses`` may hold SMPL (72), SMPL-H (156) or SMPL-X (165) parameters per frame; the 21
    shared body joints are kept (SMPL's two hand joints are set to rest). AMASS is Z-up: the
    global orientation is turned into SMPL's Y-up frame and its heading removed, so the body
    faces forward and the camera sampler alone decides the viewpoint.
    """

    name = "amass"
    REQUIRED_KEYS = ("poses", "betas", "trans")

    def __init__(self, files: Sequence[str | Path] | str | Path, frame_stride: int = 10):
        paths = [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]
        expanded = []
        for path in paths:
            if path.is_dir():
                expanded += sorted(path.rglob("*.npz"))
            elif path.is_file():
                expanded.append(path)
            else:
                raise FileNotFoundError(f"AMASS pose file or folder not found: {path}; pass existing .npz files or a folder of them")
        if not expanded:
            raise FileNotFoundError(f"no .npz files under {paths}; AMASS sequences are .npz files with keys {self.REQUIRED_KEYS}")
        if frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {frame_stride}")
        self.frames: list[tuple[str, int, np.ndarray]] = []
        for path in expanded:
            poses = self._read_poses(path)
            if poses.ndim != 2 or poses.shape[1] not in (72, 156, 165):
                raise ValueError(f"{path}: 'poses' must be (frames, 72|156|165), got {poses.shape}")
            if len(poses) == 0 or not np.isfinite(poses).all():
                raise ValueError(f"{path}: 'poses' is empty or holds NaN/inf values; leave this sequence out")
            for frame in range(0, len(poses), frame_stride):
                self.frames.append((path.stem, frame, poses[frame]))
        super().__init__(seed=0, size=len(self.frames))

    @classmethod
    def _read_poses(cls, path: Path) -> np.ndarray:
        """The ``poses`` array of one sequence file, or a one-line error naming the file."""
        import zipfile

        unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)  # truncated, not .npz, pickled
        try:
            data = np.load(path)
        except unreadable as error:
            raise ValueError(f"{path}: not a readable .npz file ({type(error).__name__}); download it again") from None
        if not hasattr(data, "files"):
            raise ValueError(f"{path}: a single .npy array, not an .npz of arrays; use the AMASS download as it is")
        with data:
            missing = [k for k in cls.REQUIRED_KEYS if k not in data.files]
            if missing:
                raise ValueError(f"{path} is not an AMASS sequence: missing keys {missing} (found {data.files})")
            try:
                return np.asarray(data["poses"], float)
            except unreadable as error:
                raise ValueError(f"{path}: not a readable .npz file ({type(error).__name__}); download it again") from None

    def _make(self, index, rng, pose_id):
        stem, frame, vec = self.frames[index]
        body = np.zeros((23, 3))
        n_body = 23 if vec.shape[0] == 72 else 21
        body[:n_body] = vec[3:3 + 3 * n_body].reshape(n_body, 3)
        z_up_to_y_up = Rotation.from_euler("x", -90, degrees=True)
        root = z_up_to_y_up * Rotation.from_rotvec(vec[:3])
        forward = root.apply([0.0, 0.0, 1.0])
        heading = np.arctan2(forward[0], forward[2])
        root = Rotation.from_euler("y", -heading) * root
        return Pose(f"amass:{stem}:{frame:06d}", body, root.as_rotvec(), family="amass")

