"""Condition gallery overview: poses from every source under uniformly sampled viewpoints."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .body.anny_body import AnnyBody
from .body.poses import ExternalPoseLibrary, GaitPoses, StandingPoses
from .analysis.world_figures import headless_pyplot
from .paths import atomic_output
from .render.camera import ViewpointSampler
from .render.pipeline import ConditionMaps, ConditionRenderer


def render_gallery(n: int, seed: int = 0, width: int = 192, height: int = 384,
                   sampler: ViewpointSampler = ViewpointSampler()) -> tuple[ConditionMaps, pd.DataFrame]:
    """``n`` condition samples: a third in-domain (gait, standing), the rest external poses."""
    if n < 1:
        raise ValueError(f"gallery size must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    n_gait, n_stand = max(1, n // 6), n // 6
    poses = GaitPoses(seed).sample(n_gait, rng) + StandingPoses(seed).sample(n_stand, rng) \
        + ExternalPoseLibrary(seed).sample(n - n_gait - n_stand, rng)
    elevation, azimuth = sampler.sample(n, rng)
    maps = ConditionRenderer(AnnyBody(), width, height).render(poses, elevation, azimuth)
    table = pd.DataFrame({
        "pose_id": [p.pose_id for p in poses], "family": [p.family for p in poses],
        "elevation": elevation, "azimuth": azimuth,
        "measured_elevation": maps.elevation, "measured_azimuth": maps.azimuth,
    })
    return maps, table


def plot_gallery(maps: ConditionMaps, table: pd.DataFrame, max_columns: int = 12):
    """Figure: one column per sample, rows depth / normal / skeleton."""
    plt = headless_pyplot()
    n = min(len(maps), max_columns)
    fig, axes = plt.subplots(3, n, figsize=(1.3 * n, 7.4), squeeze=False)
    for i in range(n):
        row = table.iloc[i]
        for r, (image, label) in enumerate(((maps.depth[i], "depth"), (maps.normal[i], "normal"),
                                            (maps.skeleton[i], "skeleton"))):
            ax = axes[r, i]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(label)
        axes[0, i].set_title(f"{row.family}\naz {row.azimuth:.0f} el {row.elevation:.0f}", fontsize=7)
    fig.suptitle("Condition gallery: Anny posed from every pose source, camera el~U(0,30), az~U(0,360)", fontsize=9)
    fig.tight_layout()
    return fig


def save_gallery(maps: ConditionMaps, table: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write ``condition_gallery.png`` and ``condition_gallery.csv`` atomically into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figure, csv = out_dir / "condition_gallery.png", out_dir / "condition_gallery.csv"
    fig = plot_gallery(maps, table)
    with atomic_output(figure) as tmp:
        fig.savefig(tmp, dpi=110)
    with atomic_output(csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.2f")
    return [figure, csv]
