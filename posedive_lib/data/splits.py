"""MSMT17-S-style custom splits (paper Sec. 4.4 and supplementary Sec. 1).

- Cam split: train and test viewpoints do not overlap. Train identities keep only images whose
  azimuth lies within ``half_width`` of the train sectors (default front and back, as walking
  pedestrians are seen); test identities keep only images at least ``half_width + gap`` away from
  them (side views).
- Pose split: train and test poses do not overlap. Normalised 2D keypoints are clustered with
  k-means; whole clusters go to train or to test, and each identity keeps only its images of its
  side's clusters.

Identities are divided between train and test first (no identity in both); each test identity
gives one query per camera and the rest of its images as gallery. The returned definition
(parameters, identity lists, cluster centres) rebuilds the split exactly with :func:`apply_split`.
"""
from __future__ import annotations

import json
import numbers
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..body.joints import COCO17_INDEX
from ..paths import atomic_output
from ..render.viewpoint import angular_difference
from .manifest import decode_keypoints


def pose_features(keypoints: np.ndarray) -> np.ndarray:
    """(N, 17, 3) keypoints -> (N, 34): centred on the hips, scaled by the shoulder-hip distance."""
    xy = np.asarray(keypoints, float)[..., :2]
    hips = xy[:, [COCO17_INDEX["left_hip"], COCO17_INDEX["right_hip"]]].mean(1)
    shoulders = xy[:, [COCO17_INDEX["left_shoulder"], COCO17_INDEX["right_shoulder"]]].mean(1)
    scale = np.linalg.norm(shoulders - hips, axis=-1, keepdims=True)
    return ((xy - hips[:, None]) / np.maximum(scale, 1e-6)[:, None]).reshape(len(xy), -1)


def _side_of_images(frame: pd.DataFrame, definition: dict) -> np.ndarray:
    """Per image: 'train', 'test' or '' (in neither region) under the split's rule."""
    if definition["kind"] == "cam":
        _require(frame, ["azimuth"], "cam")
        az = frame["azimuth"].to_numpy(float)
        distance = np.min([angular_difference(az, c) for c in definition["train_sectors"]], axis=0)
        side = np.where(distance <= definition["half_width"], "train", "")
        return np.where(distance >= definition["half_width"] + definition["gap"], "test", side)
    _require(frame, ["keypoints"], "pose")
    features = pose_features(decode_keypoints(frame["keypoints"]))
    centres = np.asarray(definition["centres"])
    cluster = np.argmin(((features[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    sides = np.array(["train" if c in definition["train_clusters"] else "test" for c in range(len(centres))])
    return np.where(np.isfinite(features).all(1), sides[cluster], "")


def _require(frame: pd.DataFrame, columns, kind: str) -> None:
    missing = [c for c in columns if c not in frame or frame[c].isna().any()]
    if missing:
        raise ValueError(f"the {kind} split needs {missing} on every row; annotate viewpoints and keypoints first")


SPLIT_OPTIONS = ("test_fraction", "half_width", "gap", "train_sectors", "clusters", "train_cluster_fraction")


def check_split_options(kind: str, **options) -> None:
    """Refuse options no split can have (one line naming the fix), before any image is read; ``options`` are
    :func:`make_split`'s (:data:`SPLIT_OPTIONS`)."""
    unknown = sorted(set(options) - set(SPLIT_OPTIONS))
    if unknown:
        raise ValueError(f"unknown split option(s) {unknown}; use {list(SPLIT_OPTIONS)}")
    _check_split_values(kind, **options)


def _check_split_values(kind: str, test_fraction: float = 0.5, half_width: float = 30.0, gap: float = 15.0,
                        train_sectors=(0.0, 180.0), clusters: int = 8, train_cluster_fraction: float = 0.5) -> None:
    if kind not in ("cam", "pose"):
        raise ValueError(f"split kind must be 'cam' or 'pose', got {kind!r}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if kind == "pose" and (not isinstance(clusters, numbers.Integral) or clusters < 2 or not 0 < train_cluster_fraction < 1):
        raise ValueError(f"need a whole number of clusters >= 2 and train_cluster_fraction in (0, 1), got {clusters} "
                         f"and {train_cluster_fraction}")
    if kind == "cam" and len(train_sectors) == 0:
        raise ValueError("give at least one train sector (azimuth in degrees, e.g. (0, 180) for front and back)")
    if kind == "cam" and (half_width <= 0 or gap < 0 or half_width + gap >= 90):
        raise ValueError(f"need half_width > 0, gap >= 0 and half_width + gap < 90 degrees, got {half_width} and {gap}")


def make_split(frame: pd.DataFrame, kind: str, seed: int = 0, test_fraction: float = 0.5, half_width: float = 30.0,
               gap: float = 15.0, train_sectors=(0.0, 180.0), clusters: int = 8, train_cluster_fraction: float = 0.5) -> dict:
    """Define a Cam (``kind='cam'``) or Pose (``kind='pose'``) split of ``frame``'s images; returns the definition."""
    _check_split_values(kind, test_fraction, half_width, gap, train_sectors, clusters, train_cluster_fraction)
    if "pid" not in frame:
        raise ValueError("make_split needs a 'pid' column; pass a manifest (see posedive_lib.data.manifest)")
    rng = np.random.default_rng(seed)
    pids = np.array(sorted(frame["pid"].unique()))
    n_test = max(1, round(test_fraction * len(pids)))
    if n_test >= len(pids):
        raise ValueError(f"{len(pids)} identities with test_fraction={test_fraction} leave no identity for train; "
                         "use more identities or a lower test_fraction")
    test_pids = set(rng.choice(pids, size=n_test, replace=False).tolist())
    definition = {"kind": kind, "seed": seed, "test_fraction": test_fraction,
                  "train_pids": [int(p) for p in pids if p not in test_pids], "test_pids": sorted(int(p) for p in test_pids)}
    if kind == "cam":
        definition.update(half_width=half_width, gap=gap, train_sectors=[float(s) for s in train_sectors])
    else:
        from sklearn.cluster import KMeans

        _require(frame, ["keypoints"], "pose")
        features = pose_features(decode_keypoints(frame["keypoints"]))
        features = features[np.isfinite(features).all(1)]
        if len(features) < clusters:
            raise ValueError(f"only {len(features)} images with keypoints for {clusters} pose clusters")
        km = KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit(features)
        sizes = np.bincount(km.labels_, minlength=clusters)
        order = rng.permutation(clusters)
        train_clusters, covered = [], 0
        for c in order:  # whole clusters to train until the fraction of images is reached
            if covered < train_cluster_fraction * len(features):
                train_clusters.append(int(c))
                covered += sizes[c]
        if len(train_clusters) == clusters:
            train_clusters.pop()
        definition.update(centres=km.cluster_centers_.round(5).tolist(), train_clusters=sorted(train_clusters))
    return definition


def apply_split(frame: pd.DataFrame, definition: dict) -> pd.DataFrame:
    """The images of ``frame`` kept by ``definition`` with their new split (train / query / gallery).

    Test identities need images from at least two cameras and a gallery image on the test side;
    others are dropped.
    """
    side = _side_of_images(frame, definition)
    train_pids, test_pids = set(definition["train_pids"]), set(definition["test_pids"])
    keep_train = frame["pid"].isin(train_pids).to_numpy() & (side == "train")
    keep_test = frame["pid"].isin(test_pids).to_numpy() & (side == "test")
    train = frame[keep_train].assign(split="train")
    test = frame[keep_test].copy()
    cams = test.groupby("pid")["camid"].nunique()
    test = test[test["pid"].isin(cams[cams >= 2].index)]
    first = ~test.sort_values(["pid", "camid", "path"]).duplicated(["pid", "camid"])
    test["split"] = np.where(first.reindex(test.index), "query", "gallery")
    test = test[test["pid"].isin(test.loc[test["split"] == "gallery", "pid"])]  # every query needs a gallery match
    out = pd.concat([train, test]).reset_index(drop=True)
    if out.empty or (out["split"] == "train").sum() == 0 or (out["split"] == "query").sum() == 0:
        hint = "widen half_width or lower gap" if definition["kind"] == "cam" else "change clusters or train_cluster_fraction"
        raise ValueError(f"the split keeps no train or no test images; {hint}, or change test_fraction")
    return out


def save_split(definition: dict, path: str | os.PathLike) -> Path:
    """Write the definition as JSON (atomically)."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(definition, indent=1))
    return Path(path)


SPLIT_KEYS = {"cam": ("train_pids", "test_pids", "half_width", "gap", "train_sectors"),
              "pose": ("train_pids", "test_pids", "centres", "train_clusters")}


def load_split(path: str | os.PathLike) -> dict:
    """A definition written by :func:`save_split`, checked for its kind's keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"split definition {path} not found; make it with make_split and save_split")
    try:
        definition = json.loads(path.read_text())
    except ValueError:
        raise ValueError(f"{path} is not valid JSON; make the split again with make_split and save_split") from None
    kind = definition.get("kind") if isinstance(definition, dict) else None
    if kind not in SPLIT_KEYS:
        raise ValueError(f"{path}: 'kind' must be 'cam' or 'pose', got {kind!r}; is it a split definition?")
    missing = [k for k in SPLIT_KEYS[kind] if k not in definition]
    if missing:
        raise ValueError(f"{path}: a {kind} split definition without {missing}; make it again with make_split")
    return definition


def split_sizes(frame: pd.DataFrame) -> pd.DataFrame:
    """Images and identities on each side of a split manifest (one row per ``split`` value)."""
    return frame.groupby("split").agg(images=("path", "size"), identities=("pid", "nunique")).reset_index()
