"""The README's result tables, rendered from the committed run folders so that the README cannot drift from them.

Each table sits in README.md between ``<!-- table: NAME -->`` and ``<!-- /table -->``. ``python -m
posedive_lib.cli readme-tables`` rewrites every block from the CSV files under ``results/``; ``--check`` only
reports the blocks that differ (the test suite runs it). Every number is recomputed from the per-seed runs
files (mean +- std over seeds, paired change against the baseline, seeds where the change is positive).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Callable

import pandas as pd

from ..reid.experiment import oracle_gain_share, paired_summary
from .paper_tables import CLAIM_CHECKS, claim_change

BLOCK = re.compile(r"(<!-- table: (?P<name>[a-z0-9_]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.S)

QUALITY_SETS = {
    "generated_both": "generated, external poses + uniform cameras (`both`)",
    "generated_pose": "generated, external poses only (`pose`)",
    "generated_viewpoint": "generated, uniform cameras only (`viewpoint`)",
    "generated_in_domain": "generated, train poses and cameras (`in_domain`)",
    "oracle_both": "oracle renders in the `both` conditions",
}
MAIN_SETTINGS = {
    "baseline": "baseline: biased train split",
    "posedive": "+ Pose-dIVE augmentation (external poses, uniform cameras), tiny generator",
    "quantity": "+ as many generated images in the train poses and viewpoints (\"quantity\")",
    "oracle": "+ oracle renders in the Pose-dIVE conditions (a perfect generator)",
}
ABLATIONS = {
    "pose": "pose only (Table 2)",
    "viewpoint": "viewpoint only (Table 2)",
    "both": "pose and viewpoint (Table 2, = main)",
    "in_domain": "in-domain poses and viewpoints (Table 8b)",
    "oracle_in_domain": "true renders in in-domain poses and viewpoints: more real images (Table 3's quantity)",
    "both_per_id_2": "2 instead of 4 per identity (supp. Fig. 2)",
    "both_tau_0.3": "keypoint filter, tau = 0.3 (supp. Fig. 4)",
    "both_tau_0.6": "keypoint filter, tau = 0.6 (supp. Fig. 4)",
    "both_tau_0.3_random": "as many images as tau = 0.3 keeps, drawn at random (its control)",
    "both_tau_0.6_random": "as many images as tau = 0.6 keeps, drawn at random (its control)",
    "both_id_0.5": "identity filter, cosine to the reference >= 0.5 (not in the paper)",
}
SPLITS = {"cam": "Cam (train on front and back views, test on side views)",
          "pose": "Pose (train and test on disjoint clusters of 2D poses)"}
CONTROL_SETTINGS = ["posedive", "posedive_2_per_id", "posedive_1_per_id", "in_domain", "oracle"]
CLAIM_RUNS = {"results/quick": "3 seeds, Intel Xeon, pinned (`results/quick/`)",
              "results/quick-amd-avx2": "3 seeds, AMD EPYC, AVX2 only, earlier commit (`results/quick-amd-avx2/`)",
              "results/quick-machine2": "3 seeds, AMD EPYC, unpinned AVX-512 (`results/quick-machine2/`)",
              "results/quick-amd-avx512": "3 seeds, AMD EPYC with AVX-512, pinned, commit 6f1b5b3 (`results/quick-amd-avx512/`)",
              "results/quick-6seeds": "6 seeds (`results/quick-6seeds/`)"}


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rerun the command that writes it (see the README)")
    return pd.read_csv(path)


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rerun the command that writes it (see the README)")
    return json.loads(path.read_text())


def _pm(mean: float, std: float) -> str:
    return f"{mean:.1f} +- {std:.1f}"


def _diff(row: pd.Series) -> str:
    """``+1.3 +- 2.2``: the paired mean change and its std over seeds."""
    return f"{row['paired_diff_mean']:+.1f} +- {row['paired_diff_std']:.1f}"


def _seeds(row: pd.Series) -> str:
    """``2/3``: the seeds where the paired change is positive, of all seeds."""
    return f"{int(row['better_on_seeds'])}/{int(row['seeds'])}"


def _change(row: pd.Series) -> str:
    return f"{_diff(row)} ({_seeds(row)})"


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _summary(runs: pd.DataFrame, baseline: str = "baseline") -> pd.DataFrame:
    """Unrounded, so that each cell is rounded once."""
    return paired_summary(runs, baseline, decimals=None)


def augmentation_quality(run: Path) -> str:
    """Per generated (and oracle) set: keypoints found, keypoint error, identity cosine, share kept at tau 0.6."""
    quality = _read(run / "quality_statistics.csv").set_index("set")
    filters = _read(run / "filter_statistics.csv")
    kept = filters[filters["tau"].round(2) == 0.6].set_index("set")["keep"]
    rows = [[label, f"{quality.at[key, 'keypoints_found']:.0%}", f"{quality.at[key, 'kp_error_median']:.3f}",
             f"{quality.at[key, 'id_cosine_median']:.2f}", f"{kept[key]:.1%}"]
            for key, label in QUALITY_SETS.items() if key in quality.index]
    images = int(quality["images"].iloc[0])
    return _markdown([f"Set ({images:,} images)", "keypoints found", "keypoint error vs target (median, image heights)",
                      "Re-ID cosine to the reference (median)", "kept at tau = 0.6"], rows)


def reid_main(run: Path) -> str:
    """Baseline, + Pose-dIVE, + quantity, + oracle: mAP, R1 and the paired change."""
    runs = _read(run / "reid_main_runs.csv")
    summary, r1 = _summary(runs), runs.groupby("setting")["R1"].mean()
    images = runs[runs["setting"] == "baseline"]["train_images"].iloc[0]
    rows = []
    for key, label in MAIN_SETTINGS.items():
        row = summary.loc[key]
        label = f"{label} ({images:,} images)" if key == "baseline" else label
        change = ["", ""] if key == "baseline" else [_diff(row), _seeds(row)]
        rows.append([label, _pm(row["mean"], row["std"]), f"{r1[key]:.1f}", *change])
    return _markdown(["Training data", "mAP", "R1", "paired mAP change", "better on seeds"], rows)


def msmt17s(run: Path) -> str:
    """The Cam and Pose splits: baseline, + Pose-dIVE and + oracle, with paired changes."""
    rows = []
    for split, label in SPLITS.items():
        summary = _summary(_read(run / f"msmt17s_{split}_runs.csv"))
        cells = [f"{_pm(summary.at[s, 'mean'], summary.at[s, 'std'])} ({_diff(summary.loc[s])}, {_seeds(summary.loc[s])})"
                 for s in ("posedive", "oracle")]
        rows.append([label, _pm(summary.at["baseline", "mean"], summary.at["baseline", "std"]), *cells])
    return _markdown(["Split", "baseline mAP", "+ Pose-dIVE", "+ oracle"], rows)


def ablations(run: Path) -> str:
    """Every ablation setting: extra images, mAP and the paired change against the baseline."""
    runs = _read(run / "ablation_runs.csv")
    summary, extra = _summary(runs), runs.groupby("setting")["extra_images"].first()
    rows = [[label, f"{extra[key]:,}", _pm(summary.at[key, "mean"], summary.at[key, "std"]), _diff(summary.loc[key]),
             _seeds(summary.loc[key])] for key, label in ABLATIONS.items() if key in summary.index]
    return _markdown(["Setting (paper reference)", "extra images", "mAP", "paired change", "better on"], rows)


def _claim_cell(run: Path, file: str, setting: str, compared: str) -> str:
    change = claim_change(run / file, setting, compared, decimals=None)
    return "n/a" if change is None else _change(change)


def claims(root: Path) -> str:
    """The paper's claims, checked seed by seed in each committed run (paired mAP change, seeds where it holds)."""
    runs = {label: root / folder for folder, label in CLAIM_RUNS.items()}
    rows = [[claim, f"{setting} - {compared}", *(_claim_cell(run, file, setting, compared) for run in runs.values())]
            for claim, file, setting, compared in CLAIM_CHECKS]
    identity = {label: run / "scratch_identity.csv" for label, run in runs.items()}
    rank1 = []
    for path in identity.values():
        if path.is_file():
            frame = pd.read_csv(path).set_index("start")["rank1_generated"]
            rank1.append(f"rank-1 {frame['pretrained']:.1%} vs {frame['scratch']:.1%}")
        else:
            rank1.append("(the same generators)")
    rows.append(["... and its images keep the identity (Table 8a)", "pretrained - scratch", *rank1])
    return _markdown(["Paper's claim", "compared", *runs], rows)


def six_seeds(root: Path) -> str:
    """The main and ablation settings over the quick run's 3 seeds and the 6-seed run, paired against the baseline."""
    runs = {n: root / f for n, f in (("3 seeds", "results/quick"), ("6 seeds", "results/quick-6seeds"))}
    main = {n: _read(r / "reid_main_runs.csv") for n, r in runs.items()}
    ablation = {n: _summary(_read(r / "ablation_runs.csv")) for n, r in runs.items()}
    main_summary = {n: _summary(m) for n, m in main.items()}
    rows = [[label, *(_change(main_summary[n].loc[key]) for n in runs)]
            for key, label in (("posedive", "+ Pose-dIVE (external poses, uniform cameras)"),
                               ("quantity", "+ as many in-domain generated images (\"quantity\")"),
                               ("oracle", "+ oracle renders"))]
    shares = {n: oracle_gain_share(m, "baseline", "posedive", "oracle") for n, m in main.items()}
    rows.append(["share of the oracle's gain captured", *(f"{s['mean']:.2f} +- {s['std']:.2f}" for s in shares.values())])
    for key in ("pose", "viewpoint", "oracle_in_domain", "both_per_id_2", "both_tau_0.3", "both_tau_0.3_random",
                "both_tau_0.6", "both_tau_0.6_random", "both_id_0.5"):
        rows.append([ABLATIONS[key], *(_change(ablation[n].loc[key]) for n in runs)])
    base = [f"{_pm(s.at['baseline', 'mean'], s.at['baseline', 'std'])} over {int(s.at['baseline', 'seeds'])}"
            for s in main_summary.values()]
    return _markdown([f"Setting (paired change against the baseline: {', '.join(base)} seeds)", *runs], rows)


def split_controls(root: Path) -> str:
    """The MSMT17-S splits with their control settings (``cli split-controls``), paired against each baseline."""
    header = ["Split", "Pose-dIVE, 4 per id", "2 per id", "1 per id", "in-domain, 4 per id",
              "oracle, 4 per id"]
    runs = _read(root / "results/experiments/msmt17s_controls_runs.csv")
    rows = []
    for split in ("cam", "pose"):
        table = _summary(runs[runs["experiment"] == f"msmt17s_{split}"])
        base = runs[(runs["experiment"] == f"msmt17s_{split}") & (runs["setting"] == "baseline")]
        label = f"{split.capitalize()} ({int(base['train_images'].iloc[0])} train images)"
        rows.append([label, *(_change(table.loc[s]) for s in CONTROL_SETTINGS)])
    return _markdown(header, rows)


def split_controls_quality(root: Path) -> str:
    """Identity quality of each generated set of the split controls (median Re-ID cosine to the reference)."""
    quality = _read(root / "results/experiments/msmt17s_controls_quality.csv").set_index("set")
    labels = {"main": "the world's train split (seen in stage 2; the main study)",
              "cam": "Cam split train side (identities new to the generator)",
              "pose": "Pose split train side (new to the generator)"}
    rows = [[label, f"{quality.at[f'{k}_posedive', 'id_cosine_median']:.2f} "
                    f"({quality.at[f'{k}_oracle', 'id_cosine_median']:.2f})",
             f"{quality.at[f'{k}_in_domain', 'id_cosine_median']:.2f}",
             f"{quality.at[f'{k}_posedive', 'keypoints_found']:.0%} ({quality.at[f'{k}_oracle', 'keypoints_found']:.0%})"]
            for k, label in labels.items()]
    return _markdown(["References of the generated set", "Pose-dIVE: cosine to the reference (oracle's)", "in-domain",
                      "keypoints found, Pose-dIVE (oracle)"], rows)


def oracle_check(root: Path) -> str:
    """The first experiment (``cli oracle-check``): the biased train split with and without oracle renders."""
    runs = _read(root / "results/experiments/oracle_check.csv")
    summary, r1 = _summary(runs), runs.groupby("setting")["R1"].mean()
    labels = {"baseline": "biased train split (front/back views, walking and standing)",
              "oracle": "+ oracle renders of the same identities in diverse poses and views"}
    rows = [[label, _pm(summary.at[key, "mean"], summary.at[key, "std"]), f"{r1[key]:.1f}",
             "" if key == "baseline" else _change(summary.loc[key])] for key, label in labels.items()]
    return _markdown(["Training data", "mAP", "R1", "paired mAP change (better on seeds)"], rows)


def camera_bn(folder: Path) -> str:
    """``cli camera-bn`` (its ``--out`` folder): plain and camera-based batch norm, each on the train split,
    + Pose-dIVE and + oracle renders; every change paired by seed, within a norm (against its train split) and
    across norms."""
    runs = _read(folder / "camera_bn_runs.csv")
    within = {norm: _summary(part.assign(setting=part["training_set"])) for norm, part in runs.groupby("norm")}
    across = {name: _summary(part.assign(setting=part["norm"]), "bn") for name, part in runs.groupby("training_set")}
    rows = []
    for key, label in {"baseline": "train split", "posedive": "+ Pose-dIVE", "oracle": "+ oracle renders"}.items():
        cells = [label]
        for norm in ("bn", "cbn"):
            cells += [_pm(within[norm].at[key, "mean"], within[norm].at[key, "std"]),
                      "" if key == "baseline" else _change(within[norm].loc[key])]
        rows.append(cells + [_change(across[key].loc["cbn"])])
    return _markdown(["Training data", "plain BN: mAP", "paired change", "camera-based BN: mAP", "paired change",
                      "camera-based minus plain BN"], rows)


def _identity_cells(scores: dict | pd.Series, suffix: str = "generated") -> list[str]:
    """rank-1, closer share (bold where the identity target is met) and the same / other identity cosines."""
    rank1, closer = scores[f"rank1_{suffix}"], scores[f"closer_{suffix}"]
    return [f"**{rank1:.1%}**" if rank1 >= 0.5 else f"{rank1:.1%}", f"**{closer:.1%}**" if closer >= 0.8 else f"{closer:.1%}",
            f"{scores[f'cos_same_{suffix}']:.2f} / {scores[f'cos_other_{suffix}']:.2f}"]


def generator_identity(root: Path) -> str:
    """The identity check of the quick profile's generator (``cli generator``), with its two references."""
    scores = _read_json(root / "results/benchmarks/generator_identity_rank1.json")["details"]
    rerun = root / "results/quick/identity.json"
    again = (f"; {_read_json(rerun)['rank1_generated']:.1%} in the committed quick run, on a machine "
             "whose kernels round differently") if rerun.is_file() else ""
    steps = f"{scores['stage2_steps']:,} stage-2 steps from `{scores['pretrained']}`"
    rows = [[f"generated image ({steps}; chance {1 / scores['identities']:.0%}{again})", *_identity_cells(scores)],
            ["the reference image itself (copying it)", *_identity_cells(scores, "reference")],
            ["the oracle render (a perfect generator)", *_identity_cells(scores, "oracle")]]
    return _markdown(["Query", f"rank-1 among oracle renders of {scores['identities']} identities",
                      "closer to own identity than to another in the same condition",
                      "mean cosine, same / other identity"], rows)


def _generator_study(root: Path, name: str, column: str, label: Callable[[int], str], prefix: str) -> list[list[str]]:
    """One row per generator of a study: identity scores, the Re-ID change of its augmentation, unfiltered and
    keypoint-filtered (tau 0.6) with the images kept."""
    identity = _read(root / f"results/experiments/generator_{name}_identity.csv")
    runs = _read(root / f"results/experiments/generator_{name}_runs.csv")
    summary, extra = _summary(runs), runs.groupby("setting")["extra_images"].first()
    rows = []
    for _, scores in identity.iterrows():
        setting = f"{prefix}{int(scores[column])}"
        filtered = f"{setting}_tau_0.6"
        rows.append([label(int(scores[column])), *_identity_cells(scores), _change(summary.loc[setting]),
                     f"{extra[filtered]:,} images, {_change(summary.loc[filtered])}"])
    return rows


def _generator_header(first: str) -> list[str]:
    return [first, "rank-1", "closer to own identity", "mean cosine, same / other identity",
            "Re-ID mAP change, unfiltered", "kept at tau = 0.6, and its change"]


def fine_tuning(root: Path) -> str:
    """``cli fine-tuning``: the generator fine-tuned for several stage-2 lengths from the 2,000-step stage 1."""
    rows = _generator_study(root, "fine_tuning", "stage2_steps", lambda steps: f"{steps:,}", "stage2_")
    return _markdown(_generator_header("Stage-2 steps"), rows)


def stage1_length(root: Path) -> str:
    """``cli stage1-length``: stage 1 continued for more steps from the 2,000-step weights, then fine-tuned."""
    def label(extra: int) -> str:
        total = f"{2000 + extra:,}"
        return f"{total} (its fp32 copy; the committed bf16 export is used by every run)" if extra == 4000 else total

    rows = _generator_study(root, "stage1_length", "stage1_extra_steps", label, "stage1_plus_")
    return _markdown(_generator_header("Stage-1 steps (total)"), rows)


def notebook_minutes(run: Path) -> str:
    """How long each executed notebook of a run took (papermill's record in the notebook's metadata)."""
    rows, total = [], 0.0
    for path in sorted(run.glob("[0-9][0-9]_*.ipynb")):
        minutes = json.loads(path.read_text())["metadata"].get("papermill", {}).get("duration", 0.0) / 60
        total += minutes
        rows.append([f"`{path.name}`", f"{minutes:.1f}"])
    if not rows:
        raise FileNotFoundError(f"no executed notebooks in {run}; run `make quick`")
    return _markdown(["Notebook", "minutes"], rows + [["all notebooks", f"{total:.1f}"]])


RENDERERS: dict[str, Callable[[Path], str]] = {
    "augmentation_quality": lambda root: augmentation_quality(root / "results/quick"),
    "reid_main": lambda root: reid_main(root / "results/quick"),
    "msmt17s": lambda root: msmt17s(root / "results/quick"),
    "ablations": lambda root: ablations(root / "results/quick"),
    "notebook_minutes": lambda root: notebook_minutes(root / "results/quick"),
    "claims": claims,
    "six_seeds": six_seeds,
    "split_controls": split_controls,
    "split_controls_quality": split_controls_quality,
    "oracle_check": oracle_check,
    "camera_bn": lambda root: camera_bn(root / "results/experiments"),
    "camera_bn_six_seeds": lambda root: camera_bn(root / "results/experiments/camera_bn_six_seeds"),
    "generator_identity": generator_identity,
    "fine_tuning": fine_tuning,
    "stage1_length": stage1_length,
}


def render_readme(text: str, root: str | os.PathLike) -> str:
    """``text`` with every table block replaced by its rendering from the run folders under ``root``."""
    root = Path(root)
    unknown = sorted({m["name"] for m in BLOCK.finditer(text)} - set(RENDERERS))
    if unknown:
        raise ValueError(f"README table blocks {unknown} have no renderer; use one of {sorted(RENDERERS)}")
    return BLOCK.sub(lambda m: m.group(1) + RENDERERS[m["name"]](root) + m.group(4), text)


def stale_blocks(text: str, root: str | os.PathLike) -> list[str]:
    """Names of the table blocks of ``text`` that differ from their rendering."""
    fresh = {m["name"]: m["body"] for m in BLOCK.finditer(render_readme(text, root))}
    return [m["name"] for m in BLOCK.finditer(text) if fresh[m["name"]] != m["body"]]


def update_readme(readme: str | os.PathLike, root: str | os.PathLike | None = None, check: bool = False) -> list[str]:
    """Rewrite the table blocks of ``readme`` (or, with ``check``, only list the stale ones); returns the stale names."""
    readme = Path(readme)
    text = readme.read_text()
    stale = stale_blocks(text, root or readme.parent)
    if stale and not check:
        readme.write_text(render_readme(text, root or readme.parent))
    return stale
