"""Condition maps (depth, normal, skeleton) for the images of a rendered synthetic world.

Every world image is reproducible from its shot plan, so its condition maps are rendered on demand
with the same camera framing and cached next to the world as one compressed ``.npz`` per set.
"""
from __future__ import annotations

import numpy as np

from ...paths import atomic_output
from .world import SyntheticWorld, pose_sources, camera_looks, identity_of, plan_shots

CONDITION_CHANNELS = {"depth": 1, "normal": 3, "skeleton": 3}


def world_conditions(world: SyntheticWorld, set_name: str, batch: int = 32, progress: bool = True) -> dict[str, np.ndarray]:
    """``{"path", "depth", "normal", "skeleton"}`` arrays for every image of ``set_name``, in manifest order.

    Rendered once and cached as ``conditions_<set>.npz`` in the world's folder.
    """
    rows = world.subset(set_name)
    cache = world.root / f"conditions_{set_name}.npz"
    if cache.is_file():
        with np.load(cache) as stored:
            maps = {k: stored[k] for k in stored.files}
        if list(maps["path"]) == list(rows["path"]):
            return maps
    maps = _render(world, rows["path"].tolist(), batch, progress)
    with atomic_output(cache) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **maps)
    return maps


def _render(world: SyntheticWorld, paths: list[str], batch: int, progress: bool) -> dict[str, np.ndarray]:
    from tqdm.auto import tqdm

    from .person_renderer import PersonRenderer, Shot

    config = world.config
    by_path = {shot.path: shot for shot in plan_shots(config)}
    missing = [p for p in paths if p not in by_path]
    if missing:
        raise ValueError(f"{len(missing)} images (first {missing[0]!r}) are not in this world's shot plan: "
                         "rebuild the world with build_world() instead of editing its manifest")
    renderer = PersonRenderer(config.width, config.height, config.supersample)
    sources, looks = pose_sources(config.seed), camera_looks(config)
    out = {name: [] for name in CONDITION_CHANNELS}
    for start in tqdm(range(0, len(paths), batch), desc="condition maps", disable=not progress):
        specs = [by_path[p] for p in paths[start:start + batch]]
        shots = [Shot(identity_of(config, s.pid), sources[s.pose_source][s.pose_index], s.elevation, s.azimuth,
                      looks[s.camid], s.seed) for s in specs]
        maps = renderer.render_conditions(shots)
        for name in CONDITION_CHANNELS:
            out[name].append(getattr(maps, name))
    return {"path": np.asarray(paths), **{k: np.concatenate(v) for k, v in out.items()}}
