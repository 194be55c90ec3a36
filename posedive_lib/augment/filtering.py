"""Keypoint-confidence filtering of an augmentation (paper supplementary Sec. 5); nothing is deleted.

Per generated image, with confidences from a 2D pose estimator:
- the reference is kept if its *minimum* keypoint confidence is at least ``tau_ref``;
- the target condition if the *mean* confidence on its rendered normal map is at least ``tau_tar``;
- the generated image if the mean absolute difference between its confidences and the target's is at
  most ``epsilon_gen`` and its mean confidence is at least ``tau_gen``.
Every value and decision is written into the manifest (``kp_*`` and ``keep_*`` columns, ``keep`` =
all of them), so thresholds can be swept afterwards with :func:`apply_thresholds` without re-running
the estimator. Two extra quality measures, off by default as in the paper, can filter as well:
``kp_gen_error`` (pose: distance of the generated image's keypoints from the target's, in image
heights) and ``id_cosine`` (identity: Re-ID cosine similarity of reference and generated image, added
by :func:`add_identity_similarity`).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.images import read_rgb_stack
from .condition_gallery import ConditionGallery
from .keypoints import estimate_files


@dataclass(frozen=True)
class FilterThresholds:
    tau_ref: float = 0.6
    tau_tar: float = 0.6
    epsilon_gen: float = 0.4
    tau_gen: float = 0.6
    max_keypoint_error: float | None = None  # extra pose filter: kp_gen_error at most this (image heights)
    min_id_cosine: float | None = None  # extra identity filter: id_cosine at least this

    def __post_init__(self):
        confidences = {k: getattr(self, k) for k in ("tau_ref", "tau_tar", "epsilon_gen", "tau_gen")}
        bad = {k: v for k, v in confidences.items() if not 0 <= v <= 1}
        if bad:
            raise ValueError(f"filter thresholds are confidences in [0, 1], got {bad}")
        if self.max_keypoint_error is not None and not self.max_keypoint_error > 0:
            raise ValueError(f"max_keypoint_error is a distance in image heights (> 0), got {self.max_keypoint_error}")
        if self.min_id_cosine is not None and not -1 <= self.min_id_cosine <= 1:
            raise ValueError(f"min_id_cosine is a cosine similarity in [-1, 1], got {self.min_id_cosine}")

    @classmethod
    def at(cls, tau: float, epsilon_gen: float = 0.4) -> "FilterThresholds":
        """The paper's sweep point: the reference, target and generated confidence thresholds all at ``tau``."""
        return cls(tau, tau, epsilon_gen, tau)


def keypoint_error(estimated: np.ndarray, target: np.ndarray, height: int, min_confidence: float = 0.5) -> np.ndarray:
    """Mean distance (in image heights) between estimated (N, 17, 3: x, y, confidence) and target keypoints
    (N, 17, 3: x, y, visible) over the keypoints visible in the target and confidently found; NaN if none."""
    used = (target[..., 2] > 0) & (estimated[..., 2] >= min_confidence)
    distance = np.linalg.norm(estimated[..., :2] - target[..., :2], axis=-1) / height
    with np.errstate(invalid="ignore"):
        return np.where(used.any(1), (distance * used).sum(1) / used.sum(1), np.nan)


def keypoint_statistics(manifest: pd.DataFrame, root: str | os.PathLike, gallery: ConditionGallery, estimator,
                        batch: int = 64, progress: bool = True, parent_root: str | os.PathLike | None = None) -> pd.DataFrame:
    """Add ``kp_ref_min``, ``kp_target_mean``, ``kp_gen_mean``, ``kp_gen_diff``, ``kp_gen_error`` (and the
    generated image's estimated keypoints) to an augmentation manifest whose paths are under ``root`` and whose
    parents (reference images) are under ``parent_root`` (default: ``root``)."""
    from tqdm.auto import tqdm

    from ..data.manifest import decode_keypoints, encode_keypoints

    root = Path(root)
    missing = [c for c in ("path", "parent", "condition_id") if c not in manifest.columns]
    if missing:
        raise ValueError(f"the augmentation manifest lacks columns {missing}: filter the output of augment()")
    condition_index = pd.Series(np.arange(len(gallery)), index=gallery.table["condition_id"])
    unknown = ~manifest["condition_id"].isin(condition_index.index)
    if unknown.any():
        raise ValueError(f"{int(unknown.sum())} rows name conditions that are not in this gallery "
                         f"(first {manifest['condition_id'][unknown].iloc[0]!r}): pass the gallery they were drawn from")
    # the target's confidence: the estimator on the rendered normal map, once per distinct condition
    used = np.unique(condition_index[manifest["condition_id"]].to_numpy())
    target_conf = dict(zip(used, estimator.estimate(gallery.normal[used])["keypoints"][..., 2]))
    parents = manifest["parent"].drop_duplicates().tolist()
    ref_min = {}
    for start in tqdm(range(0, len(parents), batch), desc="keypoints: references", disable=not progress):
        chunk = parents[start:start + batch]
        conf = estimate_files(estimator, chunk, parent_root or root)["keypoints"][..., 2]
        ref_min.update(zip(chunk, conf.min(1)))
    target_keypoints = decode_keypoints(gallery.table["keypoints"])  # rendered joints: x, y, visible
    gen_mean, gen_diff, gen_error, gen_keypoints = [], [], [], []
    for start in tqdm(range(0, len(manifest), batch), desc="keypoints: generated", disable=not progress):
        rows = manifest.iloc[start:start + batch]
        images = read_rgb_stack(rows["path"], root)
        out = estimator.estimate(images)
        conf = out["keypoints"][..., 2]
        index = condition_index[rows["condition_id"]].to_numpy()
        target = np.stack([target_conf[i] for i in index])
        gen_mean += conf.mean(1).tolist()
        gen_diff += np.abs(conf - target).mean(1).tolist()
        gen_error += keypoint_error(out["keypoints"], target_keypoints[index], images.shape[1]).tolist()
        gen_keypoints += encode_keypoints(out["keypoints"])
    target_mean = np.array([target_conf[i].mean() for i in condition_index[manifest["condition_id"]].to_numpy()])
    return manifest.assign(kp_ref_min=manifest["parent"].map(ref_min).astype(float), kp_target_mean=target_mean,
                           kp_gen_mean=gen_mean, kp_gen_diff=gen_diff, kp_gen_error=gen_error,
                           kp_generated=gen_keypoints)


def cached_keypoint_statistics(manifest: pd.DataFrame, root: str | os.PathLike, gallery, cache: str | os.PathLike,
                               progress: bool = True, parent_root: str | os.PathLike | None = None) -> pd.DataFrame:
    """:func:`keypoint_statistics` with a fresh mediapipe estimator, cached as CSV at ``cache`` (a cache from before
    the keypoint error was recorded is recomputed). ``gallery``: the condition gallery, or a function that builds it
    (called only when the statistics are computed)."""
    from ..paths import atomic_output
    from .keypoints import PoseEstimator

    cache = Path(cache)
    if cache.is_file():
        stats = pd.read_csv(cache, dtype={"pose_id": str, "keypoints": str, "kp_generated": str})
        if "kp_gen_error" in stats:
            return stats
    estimator = PoseEstimator()
    try:
        stats = keypoint_statistics(manifest, root, gallery() if callable(gallery) else gallery, estimator,
                                    progress=progress, parent_root=parent_root)
    finally:
        estimator.close()
    with atomic_output(cache) as tmp:
        stats.to_csv(tmp, index=False)
    return stats


def random_subset(rows: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` rows of ``rows`` drawn at random with ``seed``, in their order: the same-size control of a filter (a
    stricter filter also keeps fewer images, so the paper's supplementary Fig. 4 compares at equal counts)."""
    return rows[rows.index.isin(rows.sample(n=n, random_state=seed).index)]


def apply_thresholds(stats: pd.DataFrame, thresholds: FilterThresholds = FilterThresholds()) -> pd.DataFrame:
    """``keep_reference``, ``keep_target``, ``keep_generated`` and ``keep`` columns for ``thresholds``."""
    missing = [c for c in ("kp_ref_min", "kp_target_mean", "kp_gen_mean", "kp_gen_diff") if c not in stats.columns]
    if missing:
        raise ValueError(f"missing keypoint statistics {missing}: run keypoint_statistics() first")
    t = thresholds
    keep_reference = stats["kp_ref_min"] >= t.tau_ref
    keep_target = stats["kp_target_mean"] >= t.tau_tar
    keep_generated = (stats["kp_gen_diff"] <= t.epsilon_gen) & (stats["kp_gen_mean"] >= t.tau_gen)
    keep = keep_reference & keep_target & keep_generated
    extra = {}
    for column, name, value, keeps in (
            ("kp_gen_error", "keep_pose", t.max_keypoint_error, lambda v, limit: v <= limit),  # NaN (no keypoint) fails
            ("id_cosine", "keep_identity", t.min_id_cosine, lambda v, limit: v >= limit)):
        if value is None:
            continue
        if column not in stats:
            how = "add_identity_similarity()" if column == "id_cosine" else "keypoint_statistics() again"
            raise ValueError(f"the {name[5:]} filter needs the {column!r} column: run {how} first")
        extra[name] = keeps(stats[column], value)
        keep = keep & extra[name]
    return stats.assign(keep_reference=keep_reference, keep_target=keep_target, keep_generated=keep_generated,
                        **extra, keep=keep)


def filter_summary(stats: pd.DataFrame, taus=(0.15, 0.3, 0.45, 0.6, 0.75, 0.9), epsilon_gen: float = 0.4) -> pd.DataFrame:
    """Share of images each filter keeps when all three confidence thresholds are set to each ``tau``."""
    rows = []
    for tau in taus:
        kept = apply_thresholds(stats, FilterThresholds.at(tau, epsilon_gen))
        rows.append({"tau": tau, "epsilon_gen": epsilon_gen, "images": len(kept),
                     **{c: round(float(kept[c].mean()), 4) for c in ("keep_reference", "keep_target", "keep_generated", "keep")}})
    return pd.DataFrame(rows)


def quality_summary(stats: pd.DataFrame) -> dict:
    """Pose and identity quality of a set: share of images with keypoints found, median keypoint error
    (image heights), median and mean ``id_cosine`` when present."""
    summary = {"images": len(stats), "keypoints_found": round(float(stats["kp_gen_error"].notna().mean()), 4),
               "kp_error_median": round(float(stats["kp_gen_error"].median()), 4)}
    if "id_cosine" in stats:
        summary.update(id_cosine_median=round(float(stats["id_cosine"].median()), 4),
                       id_cosine_mean=round(float(stats["id_cosine"].mean()), 4))
    return summary


def add_identity_similarity(stats: pd.DataFrame, root: str | os.PathLike, judge) -> pd.DataFrame:
    """``id_cosine``: cosine similarity of Re-ID features of each generated image and its reference."""
    import torch
    import torch.nn.functional as F

    from ..reid.train import embed_images

    root = Path(root)
    as_tensor = lambda paths: torch.from_numpy(read_rgb_stack(paths, root)).permute(0, 3, 1, 2)  # noqa: E731
    generated = F.normalize(embed_images(judge, as_tensor(stats["path"]), flip=True), dim=1)
    references = F.normalize(embed_images(judge, as_tensor(stats["parent"]), flip=True), dim=1)
    return stats.assign(id_cosine=(generated * references).sum(1).numpy())
