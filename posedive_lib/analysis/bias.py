"""Dataset bias: how much of the viewpoint and pose space a set of images covers (paper Fig. 2).

Viewpoint coverage is the normalised entropy of the (azimuth x elevation) histogram: 1 when every
bin is equally used, 0 when all images share one bin. Pose diversity is the mean distance of the
hip-centred, torso-scaled 2D keypoints to their centroid; a t-SNE of the same features shows where
each set lies in pose space.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.manifest import decode_keypoints
from ..data.splits import pose_features
from .world_figures import headless_pyplot

AZIMUTH_BINS = 12
ELEVATION_EDGES = (0.0, 10.0, 20.0, 30.0, 90.0)


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns or frame[c].isna().all()]
    if missing:
        raise ValueError(f"{what} needs the manifest columns {missing} filled: annotate the images first "
                         "(the synthetic world records them; real data sets need keypoint annotation)")


def viewpoint_histogram(frame: pd.DataFrame, azimuth_bins: int = AZIMUTH_BINS,
                        elevation_edges: tuple[float, ...] = ELEVATION_EDGES) -> np.ndarray:
    """(elevation bins, azimuth bins) image counts."""
    _require(frame, ("azimuth", "elevation"), "the viewpoint histogram")
    rows = frame.dropna(subset=["azimuth", "elevation"])
    counts, _, _ = np.histogram2d(rows["elevation"].clip(elevation_edges[0], elevation_edges[-1]),
                                  rows["azimuth"] % 360, bins=[np.asarray(elevation_edges), np.linspace(0, 360, azimuth_bins + 1)])
    return counts


def normalised_entropy(counts: np.ndarray) -> float:
    """Entropy of a histogram divided by its maximum (log of the number of bins): in [0, 1]."""
    p = np.asarray(counts, float).ravel()
    if p.sum() <= 0:
        raise ValueError("empty histogram: no images with the needed annotation")
    p = p[p > 0] / p.sum()
    return float(-(p * np.log(p)).sum() / np.log(np.asarray(counts).size))


def pose_diversity(frame: pd.DataFrame) -> float:
    """Mean distance of pose features to their centroid (torso lengths)."""
    features = _pose_features(frame)
    return float(np.linalg.norm(features - features.mean(0), axis=1).mean())


def _pose_features(frame: pd.DataFrame) -> np.ndarray:
    _require(frame, ("keypoints",), "pose features")
    keypoints = decode_keypoints(frame["keypoints"])
    features = pose_features(keypoints)
    return features[np.isfinite(features).all(1)]


def coverage_table(sets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per named set: images, azimuth entropy, viewpoint entropy, pose diversity."""
    rows = []
    for name, frame in sets.items():
        rows.append({"set": name, "images": len(frame),
                     "azimuth_entropy": round(normalised_entropy(viewpoint_histogram(frame).sum(0)), 3),
                     "viewpoint_entropy": round(normalised_entropy(viewpoint_histogram(frame)), 3),
                     "pose_diversity": round(pose_diversity(frame), 3)})
    return pd.DataFrame(rows)


def pose_tsne(sets: dict[str, pd.DataFrame], per_set: int = 600, seed: int = 0) -> pd.DataFrame:
    """2D t-SNE of pose features, at most ``per_set`` images per set: columns x, y, set."""
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    features, labels = [], []
    for name, frame in sets.items():
        f = _pose_features(frame)
        f = f[rng.permutation(len(f))[:per_set]]
        features.append(f)
        labels += [name] * len(f)
    features = np.concatenate(features)
    perplexity = float(min(30, max(2, (len(features) - 1) // 3)))
    xy = TSNE(perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)
    return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "set": labels})


def plot_bias(sets: dict[str, pd.DataFrame], embedding: pd.DataFrame | None = None):
    """Azimuth distribution (polar), elevation distribution and, if given, the pose t-SNE of each set."""
    plt = headless_pyplot()
    fig = plt.figure(figsize=(12, 3.8))
    polar = fig.add_subplot(1, 3, 1, projection="polar")
    bins = np.linspace(0, 2 * np.pi, 37)
    for name, frame in sets.items():
        counts, _ = np.histogram(np.deg2rad(frame["azimuth"].dropna() % 360), bins=bins)
        polar.step(np.append(bins[:-1], bins[0]), np.append(counts, counts[0]) / max(1, counts.sum()), where="post", label=name)
    polar.set_theta_zero_location("S")
    polar.set_title("azimuth (0 = front)", fontsize=9)
    ax = fig.add_subplot(1, 3, 2)
    for name, frame in sets.items():
        ax.hist(frame["elevation"].dropna(), bins=np.linspace(0, 35, 15), histtype="step", density=True, label=name)
    ax.set_xlabel("elevation (degrees)")
    ax.legend(fontsize=7)
    if embedding is not None:
        ax = fig.add_subplot(1, 3, 3)
        for name, group in embedding.groupby("set", sort=False):
            ax.scatter(group["x"], group["y"], s=3, alpha=0.5, label=name)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title("pose t-SNE", fontsize=9)
        ax.legend(fontsize=7, markerscale=3)
    fig.tight_layout()
    return fig
