"""Figures of the generator: what it was asked and what it drew, and how its training went."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from .world_figures import headless_pyplot


def _uint8_image(x: torch.Tensor) -> np.ndarray:
    from ..generator.data import to_uint8

    x = x.detach().cpu()
    return (x if x.dtype == torch.uint8 else to_uint8(x)).permute(1, 2, 0).numpy()


def plot_generation_grid(references, conditions, generated, oracle=None, rows: int = 8, title: str = ""):
    """Columns: reference, depth, normal, skeleton, generated, (oracle render of the same identity and condition).

    ``references``/``generated``/``oracle``: (N, 3, H, W) in [-1, 1] or uint8; ``conditions``: (N, 7, H, W) in [0, 1].
    """
    from ..generator.data import conditions_to_uint8

    columns = ["reference", "depth", "normal", "skeleton", "generated"] + (["oracle"] if oracle is not None else [])
    grid = []
    for i in range(min(rows, len(references))):
        c = conditions_to_uint8(conditions[i])
        tiles = [_uint8_image(references[i]), c[0].numpy(), c[1:4].permute(1, 2, 0).numpy(),
                 c[4:7].permute(1, 2, 0).numpy(), _uint8_image(generated[i])]
        grid.append(tiles + ([_uint8_image(oracle[i])] if oracle is not None else []))
    return _tile_grid(grid, columns, title)


def plot_training_previews(probe: dict[str, np.ndarray], samples: dict[int, np.ndarray], title: str = "",
                           max_steps: int = 8):
    """One row per probe: reference, skeleton, the samples at the recorded training steps (at most ``max_steps``,
    evenly spaced, first and last included), (oracle render).

    ``probe`` and ``samples`` as :func:`~posedive_lib.generator.previews.load_previews` returns them."""
    if max_steps < 2:
        raise ValueError(f"max_steps must be at least 2 (the first and the last step), got {max_steps}")
    if len(samples) > max_steps:
        steps = list(samples)
        samples = {steps[i]: samples[steps[i]] for i in sorted(set(np.linspace(0, len(steps) - 1, max_steps).round().astype(int)))}
    columns = ["reference", "skeleton"] + [f"step {s}" for s in samples] + (["oracle"] if "oracle" in probe else [])
    grid = []
    for i in range(len(probe["references"])):
        tiles = [probe["references"][i], probe["conditions"][i][4:7], *(images[i] for images in samples.values())]
        grid.append([np.moveaxis(t, 0, -1) for t in tiles + ([probe["oracle"][i]] if "oracle" in probe else [])])
    return _tile_grid(grid, columns, title, tile_size=(1.0, 2.0), fontsize=7)


def plot_controlled_grid(grid: dict, title: str = ""):
    """:func:`~posedive_lib.augment.experiment.controlled_grid` as the paper's supplementary Fig. 6: a row per
    identity (its reference, then its generated images, then the oracle renders), a column per shared condition
    (its skeleton map on top)."""
    n_ids, n_conditions = grid["generated"].shape[:2]
    blank = np.full_like(grid["references"][0], 255)
    columns = (["reference"] + [f"generated {j + 1}" for j in range(n_conditions)]
               + [f"oracle {j + 1}" for j in range(n_conditions)])
    rows = [[blank, *grid["skeletons"], *grid["skeletons"]]]
    rows += [[grid["references"][i], *grid["generated"][i], *grid["oracle"][i]] for i in range(n_ids)]
    return _tile_grid(rows, columns, title, tile_size=(1.0, 2.0), fontsize=7)


def _tile_grid(grid: list[list[np.ndarray]], columns: list[str], title: str = "", tile_size=(1.1, 2.1), fontsize: int = 8):
    """Rows of uint8 tiles (H, W grey or H, W, 3 colour) under one title per column."""
    plt = headless_pyplot()
    fig, axes = plt.subplots(len(grid), len(columns), figsize=(tile_size[0] * len(columns), tile_size[1] * len(grid)),
                             squeeze=False)
    for i, tiles in enumerate(grid):
        for ax, tile, name in zip(axes[i], tiles, columns):
            ax.imshow(tile, cmap="gray" if tile.ndim == 2 else None, vmin=0, vmax=255)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=fontsize)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()) if title else None)
    return fig


def plot_loss_curves(logs: dict[str, pd.DataFrame], window: int = 50):
    """Training loss per stage (raw and a running mean over ``window`` steps), on a log scale."""
    plt = headless_pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    offset = 0
    for name, log in logs.items():
        steps = log["step"].to_numpy() + offset
        ax.plot(steps, log["loss"], alpha=0.25, lw=0.6)
        ax.plot(steps, log["loss"].rolling(window, min_periods=1).mean(), lw=1.5, label=name)
        offset = steps[-1]
    ax.set_yscale("log")
    ax.set_xlabel("step (stages back to back)")
    ax.set_ylabel("weighted v-prediction loss")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_quality(stats: dict[str, pd.DataFrame]):
    """Per set (e.g. generated vs oracle): histograms of the identity similarity to the reference
    (``id_cosine``) and of the keypoint error against the target (image heights)."""
    plt = headless_pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for name, frame in stats.items():
        axes[0].hist(frame["id_cosine"], bins=30, range=(-0.5, 1), alpha=0.5, label=name)
        axes[1].hist(frame["kp_gen_error"].dropna(), bins=30, range=(0, 0.3), alpha=0.5, label=name)
    axes[0].set_xlabel("Re-ID cosine similarity to the reference")
    axes[1].set_xlabel("keypoint error vs target (image heights)")
    for ax in axes:
        ax.set_ylabel("images")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


# The generator's identity target (issue: rank-1 among oracle renders >= 50%, closer to its own identity >= 80%).
IDENTITY_TARGETS = {"rank1_generated": 0.5, "closer_generated": 0.8}


def plot_identity_by_length(identity: pd.DataFrame, column: str, xlabel: str):
    """Identity scores of generated images (rank-1, closer) against a training length, with the targets dashed."""
    plt = headless_pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for (score, target), colour in zip(IDENTITY_TARGETS.items(), ("C0", "C1")):
        ax.plot(identity[column], identity[score], "o-", color=colour, label=score.replace("_generated", ""))
        ax.axhline(target, color=colour, ls="--", lw=0.8)
    ax.set_ylim(0, 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of generated images (dashed: target)")
    ax.legend()
    fig.tight_layout()
    return fig
