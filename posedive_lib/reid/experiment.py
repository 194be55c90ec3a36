"""Re-ID experiments on manifests: train a setting with a seed, evaluate query vs gallery, collect rows.

A setting names which training rows are used (e.g. the real train split, or train plus oracle
renders); every setting is run with the same seeds so results compare seed by seed.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from ..paths import atomic_output
from .camera_bn import adapt_camera_statistics
from .evaluation import evaluate
from .train import TrainConfig, extract_features, load_reid_model, train_reid

CMC_RANKS = 20  # the CMC curve is kept to this rank (column ``cmc``: space-separated percentages)


def evaluate_model(model, manifest: pd.DataFrame, root, flip: bool = False) -> dict:
    """mAP / R1 / R5 / R10 and the CMC curve (percent) of ``model`` on the query and gallery rows of ``manifest``."""
    query, gallery = manifest[manifest["split"] == "query"], manifest[manifest["split"] == "gallery"]
    if query.empty or gallery.empty:
        raise ValueError("the manifest needs query and gallery rows to evaluate on")
    adapt_camera_statistics(model, pd.concat([query, gallery]), root)  # camera-based BN only (a no-op otherwise)
    qf = extract_features(model, query, root, flip=flip)
    gf = extract_features(model, gallery, root, flip=flip)
    metrics = evaluate(qf, gf, query.pid.values, gallery.pid.values, query.camid.values, gallery.camid.values,
                       max_rank=CMC_RANKS)
    cmc = " ".join(f"{100 * v:.2f}" for v in metrics.cmc)
    return {**metrics.as_dict(), "num_valid_queries": metrics.num_valid_queries, "cmc": cmc}


def training_set_key(train: pd.DataFrame) -> str:
    """Short digest of a training set's rows (``path``, ``pid``, ``camid``, order-free): names its runs."""
    rows = train[["path", "pid", "camid"]].astype(str).agg("|".join, axis=1).sort_values()
    return hashlib.sha1("\n".join(rows).encode()).hexdigest()[:12]


def run_folder(train: pd.DataFrame, out_dir: str | os.PathLike, seed: int) -> Path:
    """Where the run of ``train`` with ``seed`` lives under ``out_dir``."""
    return Path(out_dir) / f"set-{training_set_key(train)}" / f"seed{seed}"


def trained_run(train: pd.DataFrame, root: str | os.PathLike, out_dir: str | os.PathLike, seed: int,
                config: TrainConfig = TrainConfig(), progress: bool = True) -> Path:
    """The run of ``train`` with ``seed`` under ``out_dir`` (trained, resumed or reused): its folder."""
    run_dir = run_folder(train, out_dir, seed)
    train_reid(train, root, run_dir, replace(config, seed=seed), progress=progress)
    return run_dir


def run_settings(settings: Mapping[str, Callable[[], pd.DataFrame]], test: pd.DataFrame,
                 root: str | os.PathLike | Mapping[str, str | os.PathLike],
                 out_dir: str | os.PathLike | Mapping[str, str | os.PathLike], seeds: Sequence[int],
                 config: TrainConfig = TrainConfig(), progress: bool = True, workers: int | None = None) -> pd.DataFrame:
    """Train and evaluate every setting with every seed; one row per (setting, seed). ``root`` (the folder the
    training and test paths are relative to) and ``out_dir`` (the runs' folder) are one for every setting, or one
    per setting (``{setting: folder}``; e.g. exports that each hold the same test images).

    Each run trains into ``out_dir/<training-set key>/seed<k>`` (:func:`training_set_key`): finished runs
    are reused and interrupted ones resume, so the whole experiment can be re-run after a crash at no extra
    cost, and experiments that share ``out_dir`` share every run whose training rows are identical.
    On a CPU with ``config.threads`` set, ``workers`` processes (default: cores // threads) train runs side by side
    and score the finished ones with them. When every run is finished, they are only scored, in this process, with
    the workers' thread count (the same scores, unless the caller changed torch's global settings, such as its
    default dtype). Otherwise this process's thread count is left alone: setting it at all, even to the same number,
    changes the last bits of what torch computes here afterwards (e.g. the generator's samples).
    """
    import torch

    from ..processes import run_jobs

    if len(seeds) < 1:
        raise ValueError("give at least one seed (experiments report at least three)")
    sets = {name: rows_of() for name, rows_of in settings.items()}
    folders = out_dir if isinstance(out_dir, Mapping) else {name: out_dir for name in sets}
    roots = root if isinstance(root, Mapping) else {name: root for name in sets}
    jobs = [(train, test, roots[name], folders[name], seed, config) for seed in seeds for name, train in sets.items()]
    names = [(name, seed) for seed in seeds for name in sets]
    threads = None if torch.cuda.is_available() else config.threads
    if threads is None:  # one GPU, or runs that take every core: one after the other
        workers = 1
    if all((run_folder(train, out, seed) / "model.safetensors").is_file() for train, _, _, out, seed, _ in jobs):
        workers, desc = 1, "re-id runs (finished: scored)"  # no worker pool to start just to score
    else:
        desc = "re-id runs"
    scores = list(run_jobs(train_and_evaluate, jobs, workers, threads, desc=desc, progress=progress))
    rows = [{"setting": name, "seed": seed, **score} for (name, seed), score in zip(names, scores)]
    return pd.DataFrame(rows)


def train_and_evaluate(train: pd.DataFrame, test: pd.DataFrame, root, out_dir, seed: int, config: TrainConfig) -> dict:
    """Train (or reuse) the run of ``train`` with ``seed`` and score it on ``test``: rounded metrics, CMC and
    the training-set size."""
    run_dir = trained_run(train, root, out_dir, seed, config, progress=False)
    scores = evaluate_model(load_reid_model(run_dir), test, root)
    return {**{k: round(v, 2) if isinstance(v, float) else v for k, v in scores.items()}, "train_images": len(train)}


def paired_summary(results: pd.DataFrame, baseline: str, metric: str = "mAP", decimals: int | None = 2) -> pd.DataFrame:
    """Per setting: mean and std of ``metric`` and of its seed-by-seed difference to ``baseline``, rounded to
    ``decimals`` (None: unrounded, for tables that round once more)."""
    table = results.pivot(index="seed", columns="setting", values=metric)
    if baseline not in table:
        raise ValueError(f"baseline setting {baseline!r} not in results ({list(table.columns)})")
    diff = table.sub(table[baseline], axis=0)
    summary = pd.DataFrame({"mean": table.mean(), "std": table.std(ddof=1), "paired_diff_mean": diff.mean(),
                            "paired_diff_std": diff.std(ddof=1), "better_on_seeds": (diff > 0).sum(),
                            "seeds": table.count()})
    return summary if decimals is None else summary.round(decimals)


def matched_control_table(runs: pd.DataFrame, pairs: Mapping[float, tuple[str, str]], key: str = "tau") -> pd.DataFrame:
    """Per ``key`` value (a filter threshold): ``(filtered, control)`` settings of as many extra images each; their
    count, mean mAP and the seed-by-seed mAP change of the filtered set over its control."""
    rows = []
    for value, (filtered, control) in pairs.items():
        pair = runs[runs["setting"].isin([filtered, control])]
        counts = pair.groupby("setting")["extra_images"].first()
        if set(counts.index) != {filtered, control} or counts[filtered] != counts[control]:
            raise ValueError(f"{filtered} and its control {control} need runs with as many extra images each, got "
                             f"{counts.to_dict()}: train both on the same augmentation")
        summary = paired_summary(pair, control)
        rows.append({key: value, "extra_images": int(counts[filtered]), "mAP_filtered": summary.at[filtered, "mean"],
                     "mAP_random": summary.at[control, "mean"],
                     **summary.loc[filtered, ["paired_diff_mean", "paired_diff_std", "better_on_seeds", "seeds"]]})
    return pd.DataFrame(rows).set_index(key)


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a CSV atomically."""
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def oracle_gain_share(results: pd.DataFrame, baseline: str, augmented: str, oracle: str, metric: str = "mAP") -> dict:
    """Per seed ``(augmented - baseline) / (oracle - baseline)``: mean, std and the values."""
    table = results.pivot(index="seed", columns="setting", values=metric)
    missing = [s for s in (baseline, augmented, oracle) if s not in table]
    if missing:
        raise ValueError(f"settings {missing} not in results ({list(table.columns)})")
    gain = table[oracle] - table[baseline]
    share = (table[augmented] - table[baseline]) / gain.where(gain.abs() > 1e-9)
    return {"mean": float(share.mean()), "std": float(share.std(ddof=1)) if len(share) > 1 else 0.0,
            "seeds": int(share.count()), "per_seed": {int(k): round(float(v), 4) for k, v in share.items()}}


def plot_settings(results: pd.DataFrame, order: Sequence[str], metrics: Sequence[str] = ("mAP", "R1")):
    """Bars: mean over seeds per setting; dots: each seed, joined across settings (paired comparison)."""
    from ..analysis.world_figures import headless_pyplot

    plt = headless_pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    order = [s for s in order if s in set(results["setting"])]
    for ax, metric in zip(axes[0], metrics):
        table = results.pivot(index="seed", columns="setting", values=metric)[order]
        ax.bar(range(len(order)), table.mean(), color="#9ecae1", yerr=table.std(ddof=1) if len(table) > 1 else None)
        for _, row in table.iterrows():
            ax.plot(range(len(order)), row.to_numpy(), "o-", color="#3182bd", alpha=0.6, ms=3, lw=0.8)
        ax.set_xticks(range(len(order)), order, rotation=20)
        ax.set_ylabel(f"{metric} (%)")
    fig.tight_layout()
    return fig


def plot_cmc(results: pd.DataFrame, order: Sequence[str]):
    """CMC curves (mean over seeds, band: min to max over seeds) of each setting, from the ``cmc`` column."""
    import numpy as np

    from ..analysis.world_figures import headless_pyplot

    plt = headless_pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name in [s for s in order if s in set(results["setting"])]:
        curves = np.array([[float(v) for v in text.split()] for text in results.loc[results["setting"] == name, "cmc"]])
        ranks = np.arange(1, curves.shape[1] + 1)
        ax.plot(ranks, curves.mean(0), marker="o", ms=3, label=name)
        ax.fill_between(ranks, curves.min(0), curves.max(0), alpha=0.2)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_xticks([1, 5, 10, 15, 20])
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def sweep_table(runs: pd.DataFrame, points: dict[str, float], parameter: str) -> pd.DataFrame:
    """Mean and std of mAP and R1 per sweep point (``points``: setting -> parameter value), sorted by value."""
    rows = runs[runs["setting"].isin(points)]
    table = rows.groupby("setting").agg(mAP=("mAP", "mean"), mAP_std=("mAP", "std"), R1=("R1", "mean"),
                                        R1_std=("R1", "std"), extra_images=("extra_images", "first"))
    table.insert(0, parameter, pd.Series(points))
    return table.sort_values(parameter).round(2)


def plot_sweep(table: pd.DataFrame, parameter: str, metrics: Sequence[str] = ("mAP", "R1"), xlabel: str | None = None,
               baseline: Mapping[str, float] | None = None):
    """Mean +- std over seeds of each metric against a swept ``parameter`` (a :func:`sweep_table`),
    with the ``baseline``'s value of each metric as a dashed line when given."""
    from ..analysis.world_figures import headless_pyplot

    plt = headless_pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.2), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        ax.errorbar(table[parameter], table[metric], yerr=table.get(f"{metric}_std"), marker="o", capsize=3)
        if baseline is not None:
            ax.axhline(baseline[metric], color="grey", linestyle="--", label="baseline (no generated images)")
            ax.legend(fontsize=8)
        ax.set_xlabel(xlabel or parameter)
        ax.set_ylabel(f"{metric} (%)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
