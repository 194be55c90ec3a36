"""Keypoint-confidence filtering of an augmentation (paper supplementary Sec. 5); nothing is deleted.

Per generated image, with confidences from a 2D pose estimator:
- the reference is kept if its *minimum* keypoint confidence is at least ``tau_ref``;
- the target condition if the *mean* confidence on its rendered normal map is at least ``tau_tar``;
- the generated image if the mean absolute difference between its confidences and the target's is at
  most ``epsilon_gen`` and its mean confidence is at least ``tau_gen``.
Every value and decision is written into the manifest (``kp_*`` and ``keep_*`` columns, ``keep`` =
all three), so thresholds can be swept afterwards with :func:`apply_thresholds` without re-running
the estimator. Identity quality (Re-ID cosine similarity of reference and generated image) is added
by :func:`add_identity_similarity` as an extra statistic and filter.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .condition_gallery import ConditionGallery


@dataclass(frozen=True)
class FilterThresholds:
    tau_ref: float = 0.6
    tau_tar: float = 0.6
    epsilon_gen: float = 0.4
    tau_gen: float = 0.6

    def __post_init__(self):
        bad = {k: v for k, v in asdict(self).items() if not 0 <= v <= 1}
        if bad:
            raise ValueError(f"filter thresholds are confidences in [0, 1], got {bad}")


def _read(paths, root: Path) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(root / p).convert("RGB")) for p in paths])


def keypoint_statistics(manifest: pd.DataFrame, root: str | os.PathLike, gallery: ConditionGallery, estimator,
                        batch: int = 64, progress: bool = True) -> pd.DataFrame:
    """Add ``kp_ref_min``, ``kp_target_mean``, ``kp_gen_mean``, ``kp_gen_diff`` (and the generated
    image's estimated keypoints) to an augmentation manifest whose paths and parents are under ``root``."""
    from tqdm.auto import tqdm

    from ..data.manifest import encode_keypoints

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
        conf = estimator.estimate(_read(chunk, root))["keypoints"][..., 2]
        ref_min.update(zip(chunk, conf.min(1)))
    gen_mean, gen_diff, gen_keypoints = [], [], []
    for start in tqdm(range(0, len(manifest), batch), desc="keypoints: generated", disable=not progress):
        rows = manifest.iloc[start:start + batch]
        out = estimator.estimate(_read(rows["path"], root))
        conf = out["keypoints"][..., 2]
        target = np.stack([target_conf[i] for i in condition_index[rows["condition_id"]].to_numpy()])
        gen_mean += conf.mean(1).tolist()
        gen_diff += np.abs(conf - target).mean(1).tolist()
        gen_keypoints += encode_keypoints(out["keypoints"])
    target_mean = np.array([target_conf[i].mean() for i in condition_index[manifest["condition_id"]].to_numpy()])
    return manifest.assign(kp_ref_min=manifest["parent"].map(ref_min).astype(float), kp_target_mean=target_mean,
                           kp_gen_mean=gen_mean, kp_gen_diff=gen_diff, kp_generated=gen_keypoints)


def apply_thresholds(stats: pd.DataFrame, thresholds: FilterThresholds = FilterThresholds()) -> pd.DataFrame:
    """``keep_reference``, ``keep_target``, ``keep_generated`` and ``keep`` columns for ``thresholds``."""
    missing = [c for c in ("kp_ref_min", "kp_target_mean", "kp_gen_mean", "kp_gen_diff") if c not in stats.columns]
    if missing:
        raise ValueError(f"missing keypoint statistics {missing}: run keypoint_statistics() first")
    t = thresholds
    keep_reference = stats["kp_ref_min"] >= t.tau_ref
    keep_target = stats["kp_target_mean"] >= t.tau_tar
    keep_generated = (stats["kp_gen_diff"] <= t.epsilon_gen) & (stats["kp_gen_mean"] >= t.tau_gen)
    return stats.assign(keep_reference=keep_reference, keep_target=keep_target, keep_generated=keep_generated,
                        keep=keep_reference & keep_target & keep_generated)


def filter_summary(stats: pd.DataFrame, taus=(0.15, 0.3, 0.45, 0.6, 0.75, 0.9), epsilon_gen: float = 0.4) -> pd.DataFrame:
    """Share of images each filter keeps when all three confidence thresholds are set to each ``tau``."""
    rows = []
    for tau in taus:
        kept = apply_thresholds(stats, FilterThresholds(tau, tau, epsilon_gen, tau))
        rows.append({"tau": tau, "epsilon_gen": epsilon_gen, "images": len(kept),
                     **{c: round(float(kept[c].mean()), 4) for c in ("keep_reference", "keep_target", "keep_generated", "keep")}})
    return pd.DataFrame(rows)


def add_identity_similarity(stats: pd.DataFrame, root: str | os.PathLike, judge) -> pd.DataFrame:
    """``id_cosine``: cosine similarity of Re-ID features of each generated image and its reference."""
    import torch
    import torch.nn.functional as F

    from ..reid.train import embed_images

    root = Path(root)
    as_tensor = lambda paths: torch.from_numpy(_read(paths, root)).permute(0, 3, 1, 2)  # noqa: E731
    generated = F.normalize(embed_images(judge, as_tensor(stats["path"]), flip=True), dim=1)
    references = F.normalize(embed_images(judge, as_tensor(stats["parent"]), flip=True), dim=1)
    return stats.assign(id_cosine=(generated * references).sum(1).numpy())
