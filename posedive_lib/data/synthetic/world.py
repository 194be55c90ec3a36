"""The synthetic Re-ID world: a small, faithful copy of the problem Pose-dIVE attacks.

Train images come from a few low cameras that see people mostly from the front or the back while
they walk or stand; test images come from more cameras at any azimuth, higher elevations, and half
of them in diverse (external) poses. An oracle set renders the train identities in diverse poses and
viewpoints (the upper bound a perfect generator would reach), and a disjoint "fashion" set of many
other identities in any pose and viewpoint stands in for the paper's stage-1 pretraining videos.

Everything follows from the config and its seed. Images are written in chunks; each chunk's manifest
rows are saved when the chunk is complete, so a killed build resumes where it stopped.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ...paths import atomic_output, cache_dir, config_key
from ..manifest import encode_keypoints, new_manifest, read_manifest, write_manifest

SETS = ("train", "test", "oracle", "fashion")
RENDER_VERSION = 2  # bump when rendering changes what a cached world's images would look like
FASHION_PID_OFFSET = 100000


@dataclass(frozen=True)
class WorldConfig:
    n_train_ids: int = 120
    n_test_ids: int = 120
    train_per_id: int = 16
    test_per_id: int = 12
    oracle_per_id: int = 15
    n_fashion_ids: int = 200
    fashion_per_id: int = 8
    train_cameras: int = 4
    test_cameras: int = 6
    width: int = 64
    height: int = 128
    supersample: int = 1
    train_walk_fraction: float = 0.75
    train_azimuths: tuple = (0.0, 180.0)  # walking directions along the corridor the cameras watch
    train_azimuth_jitter: float = 25.0
    train_elevation: tuple = (0.0, 10.0)
    test_elevation: tuple = (0.0, 30.0)
    test_diverse_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self):
        counts = {k: v for k, v in asdict(self).items() if k.startswith("n_") or k.endswith(("_per_id", "_cameras"))}
        bad = {k: v for k, v in counts.items() if v < (0 if k in ("n_fashion_ids", "oracle_per_id") else 1)}
        if bad:
            raise ValueError(f"world sizes must be positive, got {bad}")
        if self.test_per_id % self.test_cameras or self.test_per_id < 2 * self.test_cameras:
            raise ValueError(f"test_per_id ({self.test_per_id}) must be a multiple of test_cameras ({self.test_cameras}) "
                             "and at least twice it: each camera gives one query and at least one gallery image")
        if self.train_cameras > self.test_cameras:
            raise ValueError("train cameras are a subset of the network: train_cameras <= test_cameras")
        if not 0 <= self.train_elevation[0] <= self.train_elevation[1] <= 90:
            raise ValueError(f"train_elevation must be 0 <= min <= max <= 90, got {self.train_elevation}")

    def key(self) -> str:
        """Names the cache folder: changes with the config and with :data:`RENDER_VERSION`."""
        return config_key(self, extra=RENDER_VERSION)


WORLD_PROFILES = {
    "smoke": WorldConfig(n_train_ids=6, n_test_ids=6, train_per_id=4, test_per_id=6, oracle_per_id=3,
                         n_fashion_ids=4, fashion_per_id=3, train_cameras=2, test_cameras=3),
    "quick": WorldConfig(),
    "full": WorldConfig(n_train_ids=500, n_test_ids=500, n_fashion_ids=1000),
}


@dataclass(frozen=True)
class ShotSpec:
    """Everything needed to render one image of the world, reproducibly."""

    set: str
    pid: int
    camid: int
    split: str
    index: int
    pose_source: str
    pose_index: int
    elevation: float
    azimuth: float
    seed: int

    @property
    def path(self) -> str:
        return f"images/{self.set}/{self.pid:06d}_c{self.camid}_{self.index:03d}.jpg"


# Pose source -> (kind, seed offset, size); shot plans draw indices below these sizes.
POSE_SOURCES = {"gait": ("gait", 0, 1000), "standing": ("standing", 0, 1000),
                "external_test": ("external", 1000, 4000), "external_oracle": ("external", 2000, 4000),
                "external_fashion": ("external", 3000, 4000)}


def pose_sources(seed: int, table: dict = POSE_SOURCES) -> dict:
    """Pose source objects by name, from a table of name -> (kind, seed offset, size)."""
    from ...body.poses import ExternalPoseLibrary, GaitPoses, StandingPoses

    kinds = {"gait": GaitPoses, "standing": StandingPoses, "external": ExternalPoseLibrary}
    return {name: kinds[kind](seed + offset, size) for name, (kind, offset, size) in table.items()}


def plan_shots(config: WorldConfig) -> list[ShotSpec]:
    """The full, deterministic shot list of a world (no rendering)."""
    rng = np.random.default_rng([config.seed, 17])
    shots: list[ShotSpec] = []

    def add(set_, pid, camid, split, index, source, elevation, azimuth):
        shots.append(ShotSpec(set_, pid, camid, split, index, source, int(rng.integers(POSE_SOURCES[source][2])),
                              round(float(elevation), 3), round(float(azimuth) % 360, 3), int(rng.integers(2**31))))

    def in_domain(walk_fraction):
        return "gait" if rng.random() < walk_fraction else "standing"

    train_pids = range(1, config.n_train_ids + 1)
    test_pids = range(config.n_train_ids + 1, config.n_train_ids + config.n_test_ids + 1)
    for pid in train_pids:
        for k in range(config.train_per_id):
            azimuth = rng.choice(config.train_azimuths) + rng.uniform(-1, 1) * config.train_azimuth_jitter
            add("train", pid, int(rng.integers(1, config.train_cameras + 1)), "train", k,
                in_domain(config.train_walk_fraction), rng.uniform(*config.train_elevation), azimuth)
    for pid in test_pids:
        for k in range(config.test_per_id):
            camid = k % config.test_cameras + 1
            split = "query" if k < config.test_cameras else "gallery"
            source = "external_test" if rng.random() < config.test_diverse_fraction else in_domain(0.5)
            add("test", pid, camid, split, k, source, rng.uniform(*config.test_elevation), rng.uniform(0, 360))
    for pid in train_pids:
        for k in range(config.oracle_per_id):
            add("oracle", pid, int(rng.integers(1, config.train_cameras + 1)), "train", k, "external_oracle",
                rng.uniform(*config.test_elevation), rng.uniform(0, 360))
    for n in range(config.n_fashion_ids):
        for k in range(config.fashion_per_id):
            source = "external_fashion" if rng.random() < 0.7 else in_domain(0.5)
            add("fashion", FASHION_PID_OFFSET + n, 0, "train", k, source, rng.uniform(-5, 35), rng.uniform(0, 360))
    return shots


def identity_of(config: WorldConfig, pid: int):
    from .appearance import sample_identity

    return sample_identity(pid, np.random.default_rng([config.seed, 23, pid]))


def camera_looks(config: WorldConfig) -> dict:
    """The camera network: camid -> look (camid 0 is the clean studio of the fashion set)."""
    from .person_renderer import STUDIO, CameraLook

    rng = np.random.default_rng([config.seed, 29])
    return {0: STUDIO, **{c: CameraLook.sample(rng) for c in range(1, config.test_cameras + 1)}}


class _Worker:
    """Per-process renderer state (built once per worker process)."""

    renderer = None
    config = None
    sources = None
    looks = None

    @classmethod
    def init(cls, config: WorldConfig):
        import torch

        from .person_renderer import PersonRenderer

        torch.set_num_threads(1)
        cls.config, cls.sources, cls.looks = config, pose_sources(config.seed), camera_looks(config)
        cls.renderer = PersonRenderer(config.width, config.height, config.supersample)

    @classmethod
    def render_chunk(cls, args) -> list[dict]:
        chunk, root, batch = args
        return render_shots(cls.renderer, cls.config, cls.sources, cls.looks, chunk, Path(root), batch)


def render_shots(renderer, config, sources, looks, shots: list[ShotSpec], root: Path, batch: int = 16) -> list[dict]:
    """Render and write ``shots`` under ``root``; return their manifest rows."""
    from PIL import Image

    from .person_renderer import Shot

    rows = []
    for start in range(0, len(shots), batch):
        specs = shots[start:start + batch]
        poses = [sources[s.pose_source][s.pose_index] for s in specs]
        out = renderer.render([Shot(identity_of(config, s.pid), p, s.elevation, s.azimuth, looks[s.camid], s.seed)
                               for s, p in zip(specs, poses)])
        for spec, pose, image, kp, el, az in zip(specs, poses, out.images, out.keypoints, out.elevation, out.azimuth):
            with atomic_output(root / spec.path) as tmp:
                Image.fromarray(image).save(tmp, format="JPEG", quality=95)
            rows.append({
                "path": spec.path, "pid": spec.pid, "camid": spec.camid, "split": spec.split,
                "dataset": "synthetic_fashion" if spec.set == "fashion" else "synthetic",
                "source": "oracle" if spec.set == "oracle" else "real",
                "azimuth": round(float(az), 2), "elevation": round(float(el), 2), "pose_id": pose.pose_id,
                "keypoints": encode_keypoints(kp[None])[0], "seed": spec.seed, "set": spec.set,
                "pose_family": pose.family, "commanded_azimuth": spec.azimuth, "commanded_elevation": spec.elevation,
            })
    return rows


@dataclass
class SyntheticWorld:
    """A rendered world on disk: its root folder, config and manifest."""

    config: WorldConfig
    root: Path
    manifest: pd.DataFrame = field(repr=False)
    render_seconds: float = 0.0
    rendered_images: int = 0

    def subset(self, *sets: str) -> pd.DataFrame:
        unknown = set(sets) - set(SETS)
        if unknown:
            raise ValueError(f"unknown world sets {sorted(unknown)}; use {SETS}")
        return self.manifest[self.manifest["set"].isin(sets)].reset_index(drop=True)


def world_root(config: WorldConfig, name: str = "world") -> Path:
    return cache_dir() / "synthetic" / f"{name}-seed{config.seed}-{config.key()}"


def build_world(config: WorldConfig | str = "quick", root: str | os.PathLike | None = None, workers: int | None = None,
                chunk_size: int = 64, progress: bool = True, seed: int | None = None,
                manifest_copy: str | os.PathLike | None = None) -> SyntheticWorld:
    """Render (or reuse from the cache) a world; ``config`` is a :class:`WorldConfig` or a profile name.

    ``workers`` processes render chunks of ``chunk_size`` images in parallel (default: all cores).
    Completed chunks are kept, so an interrupted build resumes; a finished build is reused as is.
    """
    if isinstance(config, str):
        if config not in WORLD_PROFILES:
            raise ValueError(f"unknown world profile {config!r}; use one of {sorted(WORLD_PROFILES)}")
        name, config = config, WORLD_PROFILES[config]
    else:
        name = "custom"
    if seed is not None:
        config = replace(config, seed=seed)
    root = Path(root) if root else world_root(config, name)
    manifest_path = root / "manifest.csv"
    if manifest_path.is_file():
        return SyntheticWorld(config, root, read_manifest(manifest_path, root))
    root.mkdir(parents=True, exist_ok=True)
    with atomic_output(root / "config.json") as tmp:
        tmp.write_text(json.dumps(asdict(config), indent=1))
    shots = plan_shots(config)
    chunks = [shots[i:i + chunk_size] for i in range(0, len(shots), chunk_size)]
    parts = root / "parts"
    parts.mkdir(exist_ok=True)
    todo = [(i, c) for i, c in enumerate(chunks) if not (parts / f"chunk_{i:05d}.csv").is_file()]
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    seconds, rendered = 0.0, sum(len(c) for _, c in todo)
    if todo:
        seconds = _render_chunks(config, root, todo, parts, workers, progress, total=len(shots),
                                 done=len(shots) - rendered)
    frames = [pd.read_csv(parts / f"chunk_{i:05d}.csv", dtype={"keypoints": str, "pose_id": str}) for i in range(len(chunks))]
    manifest = new_manifest(pd.concat(frames, ignore_index=True))
    write_manifest(manifest, manifest_path, root)  # validated against the files once, here
    if manifest_copy:
        write_manifest(manifest, manifest_copy)
    return SyntheticWorld(config, root, read_manifest(manifest_path), seconds, rendered)


def _render_chunks(config, root, todo, parts, workers, progress, total, done) -> float:
    from tqdm.auto import tqdm

    bar = tqdm(total=total, initial=done, unit="img", desc="synthetic world", disable=not progress)

    def save(index, rows):
        with atomic_output(parts / f"chunk_{index:05d}.csv") as tmp:
            pd.DataFrame(rows).to_csv(tmp, index=False)
        bar.update(len(rows))

    try:
        if workers == 1:
            from ...processes import torch_threads

            with torch_threads(None):  # the worker set-up pins one thread: give the caller its own back
                _Worker.init(config)
                start = time.perf_counter()
                for index, chunk in todo:
                    save(index, _Worker.render_chunk((chunk, str(root), 16)))
                return time.perf_counter() - start
        ctx = mp.get_context("spawn")
        with ctx.Pool(workers, initializer=_Worker.init, initargs=(config,)) as pool:
            pool.map(_noop, range(workers), chunksize=1)  # wait until every worker has its renderer
            start = time.perf_counter()
            jobs = [(index, pool.apply_async(_Worker.render_chunk, ((chunk, str(root), 16),))) for index, chunk in todo]
            for index, job in jobs:
                save(index, job.get())
            return time.perf_counter() - start
    finally:
        bar.close()


def _noop(_):
    time.sleep(0.2)
    return _Worker.renderer is not None


class OracleRenderer:
    """Renders the true identities of a world under any pose and camera (the upper-bound experiment)."""

    def __init__(self, config: WorldConfig, renderer=None):
        from .person_renderer import PersonRenderer

        self.config = config
        self.renderer = renderer or PersonRenderer(config.width, config.height, config.supersample)
        self.looks = camera_looks(config)

    def render(self, pids, poses, elevation, azimuth, camid: int = 1, seed: int = 0):
        """Images (B, H, W, 3) of identities ``pids`` in ``poses`` seen from (elevation, azimuth) by camera ``camid``."""
        from .person_renderer import Shot

        if camid not in self.looks:
            raise ValueError(f"camera {camid} is not in this world's network (cameras {sorted(self.looks)})")
        n = len(pids)
        if len(poses) != n:
            raise ValueError(f"{n} identities but {len(poses)} poses: pass one pose per identity")
        el, az = np.broadcast_to(elevation, (n,)), np.broadcast_to(azimuth, (n,))
        shots = [Shot(identity_of(self.config, int(p)), pose, float(e), float(a), self.looks[camid], seed + i)
                 for i, (p, pose, e, a) in enumerate(zip(pids, poses, el, az))]
        return self.renderer.render(shots)
