"""Figures of the synthetic world: who its identities are and how biased its cameras are."""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from ..paths import atomic_output


def headless_pyplot():
    """``matplotlib.pyplot`` on the Agg backend unless a backend was chosen (notebooks keep theirs)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_identity_grid(manifest: pd.DataFrame, root, n_ids: int = 8, per_set: int = 5, seed: int = 0):
    """Rows: identities; left block: train images (biased views), right block: oracle images (diverse)."""
    plt = headless_pyplot()
    rng = np.random.default_rng(seed)
    train = manifest[manifest["set"] == "train"]
    oracle = manifest[manifest["set"] == "oracle"]
    pids = rng.choice(sorted(train.pid.unique()), size=min(n_ids, train.pid.nunique()), replace=False)
    blocks = [("train", train), ("oracle", oracle)]
    cols = per_set * sum(1 for _, f in blocks if len(f))
    fig, axes = plt.subplots(len(pids), cols, figsize=(0.75 * cols, 1.45 * len(pids)), squeeze=False)
    for r, pid in enumerate(pids):
        c = 0
        for name, frame in blocks:
            if not len(frame):
                continue
            rows = frame[frame.pid == pid]
            rows = rows.iloc[rng.permutation(len(rows))[:per_set]]
            for k in range(per_set):
                ax = axes[r, c]
                ax.set_xticks([]), ax.set_yticks([])
                if k < len(rows):
                    row = rows.iloc[k]
                    ax.imshow(Image.open(root / row.path))
                    ax.set_xlabel(f"az {row.azimuth:.0f}", fontsize=6, labelpad=1)
                if r == 0 and k == 0:
                    ax.set_title(f"{name} images", fontsize=8, loc="left")
                c += 1
        axes[r, 0].set_ylabel(f"pid {pid}", fontsize=7)
    fig.suptitle("Synthetic identities: train views (front/back, walking) vs oracle renders (any pose, any view)",
                 fontsize=9)
    fig.tight_layout()
    return fig


def plot_viewpoint_bias(manifest: pd.DataFrame):
    """Histograms of torso-measured azimuth and elevation, train versus test."""
    plt = headless_pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    sets = [("train", "tab:blue"), ("test", "tab:orange"), ("oracle", "tab:green")]
    for name, colour in sets:
        frame = manifest[manifest["set"] == name]
        if len(frame):
            axes[0].hist(frame.azimuth, bins=36, range=(0, 360), alpha=0.5, density=True, label=name, color=colour)
            axes[1].hist(frame.elevation, bins=20, range=(-10, 40), alpha=0.5, density=True, label=name, color=colour)
    axes[0].set_xlabel("azimuth (deg, 0 = front, 90 = left side, 180 = back)")
    axes[1].set_xlabel("elevation (deg)")
    for ax in axes[:2]:
        ax.set_ylabel("density")
        ax.legend(fontsize=7)
    families = manifest[manifest["set"].isin(["train", "test"])].groupby(["set", "pose_family"]).size().unstack(0).fillna(0)
    shares = families / families.sum()
    shares.plot.barh(ax=axes[2], color=[dict(sets)[c] for c in shares.columns])
    axes[2].set_xlabel("share of images")
    axes[2].set_title("pose families", fontsize=9)
    fig.suptitle("Capture bias of the synthetic world (viewpoints measured from the posed torso)", fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig, path, close: bool = False) -> None:
    """Save atomically (no half-written figure if interrupted); ``close`` frees a figure that is not shown."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
