"""The target condition gallery (paper Sec. 3.3 / 4.1 step 2): poses x cameras rendered once into condition maps.

Modes (the paper's ablations, Table 2 and Table 8b):
- ``both``: external poses, cameras with elevation ~ U(0, 30) and azimuth ~ U(0, 360) degrees;
- ``pose``: external poses, viewpoints drawn from the training set's own (elevation, azimuth) pairs;
- ``viewpoint``: in-domain poses (gait and standing), uniform cameras;
- ``in_domain``: in-domain poses and the training set's viewpoints.
Every entry records its pose id and viewpoint; the maps are cached as one ``.npz`` per configuration.
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.manifest import encode_keypoints
from ..paths import atomic_output, cache_dir, config_key
from ..render.camera import ViewpointSampler

MODES = ("both", "pose", "viewpoint", "in_domain")
UNIFORM_VIEWPOINT_MODES = ("both", "viewpoint")  # the others draw viewpoints from the training set
# Pose sources of the gallery: kind, seed offset, size (seeds disjoint from the synthetic world's test and oracle).
GALLERY_SOURCES = {"external": ("external", 5000, 4000), "gait": ("gait", 5000, 1000), "standing": ("standing", 5000, 1000)}


@dataclass(frozen=True)
class GalleryConfig:
    size: int = 256
    mode: str = "both"
    width: int = 64
    height: int = 128
    elevation: tuple = (0.0, 30.0)
    azimuth: tuple = (0.0, 360.0)
    walk_fraction: float = 0.75  # in-domain poses: share of gait poses (the rest standing)
    seed: int = 0

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown gallery mode {self.mode!r}; use one of {MODES}")
        if self.size < 1:
            raise ValueError(f"gallery size must be at least 1, got {self.size}")
        if min(self.width, self.height) < 1:
            raise ValueError(f"gallery maps need a positive width and height, got {self.width} x {self.height}")
        if not 0 <= self.walk_fraction <= 1:
            raise ValueError(f"walk_fraction is a share of gait poses in [0, 1], got {self.walk_fraction}")
        ViewpointSampler(self.elevation, self.azimuth)  # validates the ranges


@dataclass
class ConditionGallery:
    table: pd.DataFrame  # condition_id, pose_source, pose_index, source_seed, elevation, azimuth, pose_id, pose_family, keypoints
    depth: np.ndarray  # (N, H, W) uint8
    normal: np.ndarray  # (N, H, W, 3) uint8
    skeleton: np.ndarray  # (N, H, W, 3) uint8

    def __len__(self) -> int:
        return len(self.table)

    def maps(self) -> dict[str, np.ndarray]:
        return {"depth": self.depth, "normal": self.normal, "skeleton": self.skeleton}


def gallery_pose_sources(seed: int) -> dict:
    from ..data.synthetic.world import pose_sources

    return pose_sources(seed, GALLERY_SOURCES)


def plan_gallery(config: GalleryConfig, train_viewpoints: pd.DataFrame | None = None) -> pd.DataFrame:
    """The gallery's poses and viewpoints (no rendering); in-domain viewpoints come from ``train_viewpoints``."""
    rng = np.random.default_rng([config.seed, 29])
    n = config.size
    if config.mode in ("both", "pose"):
        sources = np.full(n, "external")
    else:
        sources = np.where(rng.random(n) < config.walk_fraction, "gait", "standing")
    indices = np.array([rng.integers(GALLERY_SOURCES[s][2]) for s in sources])
    if config.mode in UNIFORM_VIEWPOINT_MODES:
        elevation, azimuth = ViewpointSampler(config.elevation, config.azimuth).sample(n, rng)
    else:
        needed = {"elevation", "azimuth"}
        if train_viewpoints is None or not needed <= set(train_viewpoints.columns) \
                or train_viewpoints[list(needed)].isna().any().any():
            raise ValueError(f"gallery mode {config.mode!r} draws viewpoints from the training set: pass its manifest rows "
                             "with elevation and azimuth filled (annotate real data sets first)")
        picks = rng.integers(len(train_viewpoints), size=n)
        elevation = train_viewpoints["elevation"].to_numpy(float)[picks]
        azimuth = train_viewpoints["azimuth"].to_numpy(float)[picks]
    return pd.DataFrame({"condition_id": [f"{config.mode}-{config.seed}-{i:05d}" for i in range(n)],
                         "pose_source": sources, "pose_index": indices, "source_seed": config.seed,
                         "elevation": np.round(elevation, 3), "azimuth": np.round(azimuth % 360, 3)})


def build_condition_gallery(config: GalleryConfig, train_viewpoints: pd.DataFrame | None = None,
                            cache: str | os.PathLike | None = None, batch: int = 32, progress: bool = True) -> ConditionGallery:
    """Render (or load from the cache) the condition maps of the gallery planned by ``config``."""
    from tqdm.auto import tqdm

    from ..body.anny_body import AnnyBody
    from ..render.pipeline import ConditionRenderer

    table = plan_gallery(config, train_viewpoints)
    key = config_key(config, extra=pd.util.hash_pandas_object(table[["elevation", "azimuth"]]).sum())
    path = Path(cache or cache_dir() / "condition_galleries") / f"gallery-{config.mode}-{key}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as stored:
            table = pd.read_json(io.StringIO(str(stored["table"])), orient="split", dtype={"pose_id": str, "keypoints": str})
            return ConditionGallery(table, stored["depth"],
                                    stored["normal"], stored["skeleton"])
    sources = gallery_pose_sources(config.seed)
    renderer = ConditionRenderer(AnnyBody(), config.width, config.height, distance=6.0, margin=0.05)
    parts: dict[str, list] = {"depth": [], "normal": [], "skeleton": []}
    pose_ids, families, keypoints = [], [], []
    for start in tqdm(range(0, len(table), batch), desc="condition gallery", disable=not progress):
        rows = table.iloc[start:start + batch]
        poses = [sources[s][int(i)] for s, i in zip(rows["pose_source"], rows["pose_index"])]
        maps = renderer.render(poses, rows["elevation"].to_numpy(), rows["azimuth"].to_numpy())
        for name in parts:
            parts[name].append(getattr(maps, name))
        pose_ids += [p.pose_id for p in poses]
        keypoints += encode_keypoints(np.concatenate([maps.keypoints[..., :2], (maps.keypoints[..., 2:] > 0)], -1))
        families += [p.family for p in poses]
    table = table.assign(pose_id=pose_ids, pose_family=families, keypoints=keypoints)
    gallery = ConditionGallery(table, *(np.concatenate(parts[k]) for k in ("depth", "normal", "skeleton")))
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, table=np.asarray(table.to_json(orient="split")), **gallery.maps())
    return gallery
