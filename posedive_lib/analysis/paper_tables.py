"""The package's measured results laid out like the paper's tables, beside the paper's reported numbers.

The paper's numbers (``paper_results.csv``, copied from the paper's text: real data sets, large Re-ID
models) are shown for reference only; the package's numbers come from the run folder of the notebooks
(synthetic world, tiny Re-ID model) as mean +- std over seeds.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

PAPER_RESULTS = Path(__file__).with_name("paper_results.csv")

# paper table -> (runs file of the run folder, experiment label, our setting -> the paper's setting)
MEASURED = {
    "main": ("reid_main_runs.csv", "synthetic world", {"baseline": "baseline", "posedive": "both"}),
    "table2": ("ablation_runs.csv", "synthetic world",
               {"baseline": "baseline", "viewpoint": "viewpoint", "pose": "pose", "both": "both"}),
    "table3": ("ablation_runs.csv", "synthetic world (quantity: true renders of the same people, train poses and views)",
               {"baseline": "baseline", "oracle_in_domain": "quantity", "both": "diversity"}),
    "table5_cam": ("msmt17s_cam_runs.csv", "synthetic Cam split", {"baseline": "baseline", "posedive": "both"}),
    "table5_pose": ("msmt17s_pose_runs.csv", "synthetic Pose split", {"baseline": "baseline", "posedive": "both"}),
    "table8a": ("scratch_runs.csv", "synthetic world", {"pretrained": "pretrained", "scratch": "scratch"}),
    "table8b": ("ablation_runs.csv", "synthetic world", {"in_domain": "in_domain", "both": "external"}),
}
TITLES = {
    "main": "Main result: baseline vs + Pose-dIVE (paper Table 1)",
    "table2": "Pose and viewpoint augmentation (paper Table 2)",
    "table3": "Diversity vs quantity at the same number of images (paper Table 3)",
    "table5": "MSMT17-S custom splits (paper Table 5)",
    "table8a": "Pretrained vs from-scratch generator (paper Table 8a)",
    "table8b": "In-domain vs external poses and viewpoints (paper Table 8b)",
}


def paper_results(path: str | os.PathLike = PAPER_RESULTS) -> pd.DataFrame:
    """The paper's reported numbers: table, dataset, model, setting, metric, value, note."""
    frame = pd.read_csv(path)
    missing = {"table", "dataset", "model", "setting", "metric", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path} lacks columns {sorted(missing)}; restore it from the repository")
    return frame


PAPER_DATASET_NAMES = {"market1501": "Market-1501", "msmt17": "MSMT17", "cuhk03": "CUHK03 (L)",
                       "cuhk03_labeled": "CUHK03 (L)", "cuhk03_detected": "CUHK03 (D)", "dukemtmc": "DukeMTMC-reID"}


def paper_table(table: str, dataset: str) -> pd.DataFrame:
    """The paper's rows of ``table`` (``main``: Tables 1 and 6, ``table2``, ``table5``, ...) for ``dataset`` (a loader
    name or alias, or the paper's name, e.g. ``MSMT17-S Cam``): one row per Re-ID model, columns (setting, metric),
    the full method (``both``, Table 8b's ``external``) as ``posedive``; empty when the paper reports none."""
    from ..data.real_datasets import canonical_name

    paper = paper_results()
    name = PAPER_DATASET_NAMES.get(canonical_name(dataset), dataset)
    rows = paper[(paper["table"] == table) & (paper["dataset"] == name)]
    pivot = rows.pivot_table(index="model", columns=["setting", "metric"], values="value")
    return pivot.rename(columns={"both": "posedive", "external": "posedive"}, level=0)


def paper_main_table(dataset: str) -> pd.DataFrame:
    """The paper's Table 1 (and Table 6) rows for a data set: mAP and R1 of each Re-ID model, baseline and
    + Pose-dIVE (empty when the paper reports none for it)."""
    return paper_table("main", dataset)


def paper_split_table(kind: str) -> pd.DataFrame:
    """The paper's Table 5 row for its MSMT17-S split ``kind`` (``cam`` or ``pose``)."""
    if kind not in ("cam", "pose"):
        raise ValueError(f"split kind must be 'cam' or 'pose', got {kind!r}")
    return paper_table("table5", f"MSMT17-S {kind.capitalize()}")


def _mean_std(values: pd.Series) -> str:
    return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}" if len(values) > 1 else f"{values.mean():.1f}"


def measured_rows(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The package's rows for each table of :data:`MEASURED` found in ``run_dir`` (mean ± std over seeds)."""
    rows = []
    for key, (file, label, settings) in MEASURED.items():
        path = Path(run_dir) / file
        if not path.is_file():
            continue
        runs = pd.read_csv(path)
        for ours, theirs in settings.items():
            chosen = runs[runs["setting"] == ours]
            if chosen.empty:
                continue
            rows.append({"table": key.split("_")[0], "source": "this package", "dataset": label,
                         "model": "tiny ResNet (BoT)", "setting": theirs, "seeds": chosen["seed"].nunique(),
                         "mAP": _mean_std(chosen["mAP"]), "R1": _mean_std(chosen["R1"])})
    return pd.DataFrame(rows)


def comparison_tables(run_dir: str | os.PathLike, paper: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """Per paper table: rows (source, dataset, model) by columns (metric, setting), the paper's and ours."""
    paper = paper_results() if paper is None else paper
    ours = measured_rows(run_dir)
    tables = {}
    for table in TITLES:
        theirs = paper[paper["table"] == table].assign(source="paper (real data)")
        theirs = theirs.pivot_table(index=["source", "dataset", "model"], columns=["metric", "setting"], values="value",
                                    aggfunc="first")
        mine = ours[ours["table"] == table] if not ours.empty else ours
        if not mine.empty:
            mine = mine.melt(id_vars=["source", "dataset", "model", "setting"], value_vars=["mAP", "R1"], var_name="metric")
            mine = mine.pivot_table(index=["source", "dataset", "model"], columns=["metric", "setting"], values="value",
                                    aggfunc="first")
        frame = pd.concat([theirs.astype(object), mine]) if not mine.empty else theirs
        tables[table] = frame.sort_index(axis=1)
    return tables


def number_of_images_table(run_dir: str | os.PathLike, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """How many generated images to add: the Diff-ID preprint's Table 2 (ResNet-50, total images added) beside this
    package's per-identity sweep (the ablation's ``baseline``, ``both_per_id_<n>`` and ``both`` runs, mean ± std over
    seeds); rows (source, dataset, model, images added), columns mAP and R1. Empty rows for ours when the run folder
    has no ablation runs."""
    paper = paper_results() if paper is None else paper
    theirs = paper[paper["table"] == "preprint_numgen"]
    theirs = theirs.assign(source="paper (real data, Diff-ID preprint)",
                           images_added=theirs["setting"].str.removeprefix("added_").astype(int))
    theirs = theirs.pivot_table(index=["source", "dataset", "model", "images_added"], columns="metric",
                                values="value", aggfunc="first")[["mAP", "R1"]].astype(object)
    path = Path(run_dir) / "ablation_runs.csv"
    if not path.is_file():
        return theirs
    runs = pd.read_csv(path)
    runs = runs[(runs["setting"] == "baseline") | (runs["setting"] == "both")
                | runs["setting"].str.startswith("both_per_id_")]
    mine = pd.DataFrame([{"source": "this package", "dataset": "synthetic world", "model": "tiny ResNet (BoT)",
                          "images_added": int(added), "mAP": _mean_std(group["mAP"]), "R1": _mean_std(group["R1"])}
                         for added, group in runs.groupby("extra_images")])
    if mine.empty:
        return theirs
    return pd.concat([theirs, mine.set_index(["source", "dataset", "model", "images_added"])])


# (claim, runs file, setting, compared with); the paper's claims checked seed by seed on mAP
CLAIM_CHECKS = [
    ("augmentation helps on the shifted test (Table 1)", "reid_main_runs.csv", "posedive", "baseline"),
    ("it helps on MSMT17-S Cam (Table 5)", "msmt17s_cam_runs.csv", "posedive", "baseline"),
    ("it helps on MSMT17-S Pose (Table 5)", "msmt17s_pose_runs.csv", "posedive", "baseline"),
    ("pose augmentation helps (Table 2)", "ablation_runs.csv", "pose", "baseline"),
    ("viewpoint augmentation helps (Table 2)", "ablation_runs.csv", "viewpoint", "baseline"),
    ("both help more than pose alone (Table 2)", "ablation_runs.csv", "both", "pose"),
    ("both help more than viewpoint alone (Table 2)", "ablation_runs.csv", "both", "viewpoint"),
    ("diversity beats quantity: more real images of the train poses and views (Table 3)", "ablation_runs.csv",
     "both", "oracle_in_domain"),
    ("external poses and views beat in-domain ones, both generated (Table 8b)", "ablation_runs.csv", "both",
     "in_domain"),
    ("keypoint filtering helps, tau = 0.3: against as many random images (supp. Fig. 4)", "ablation_runs.csv",
     "both_tau_0.3", "both_tau_0.3_random"),
    ("keypoint filtering helps, tau = 0.6: against as many random images (supp. Fig. 4)", "ablation_runs.csv",
     "both_tau_0.6", "both_tau_0.6_random"),
    ("the problem is real: images of unseen poses and views help (oracle)", "reid_main_runs.csv", "oracle",
     "baseline"),
    ("... and on the Cam split (oracle)", "msmt17s_cam_runs.csv", "oracle", "baseline"),
    ("a pretrained generator beats one trained from scratch, Re-ID on its images (Table 8a)", "scratch_runs.csv",
     "pretrained", "scratch"),
]


def claim_change(path: str | os.PathLike, better: str, worse: str, decimals: int | None = 2) -> pd.Series | None:
    """The seed-by-seed mAP change ``better - worse`` in a runs file (a row of
    :func:`~posedive_lib.reid.experiment.paired_summary`), or None when the file or a setting is missing."""
    from ..reid.experiment import paired_summary

    path = Path(path)
    if not path.is_file():
        return None
    runs = pd.read_csv(path)
    if not {better, worse} <= set(runs["setting"]):
        return None
    return paired_summary(runs[runs["setting"].isin([better, worse])], worse, decimals=decimals).loc[better]


def claims(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The paper's claims, each checked on the package's runs seed by seed (mAP): mean difference and the
    number of seeds where it holds."""
    rows = []
    for claim, file, better, worse in CLAIM_CHECKS:
        change = claim_change(Path(run_dir) / file, better, worse)
        if change is None:
            continue
        rows.append({"claim": claim, "compared": f"{better} - {worse}", "mAP_diff_mean": change["paired_diff_mean"],
                     "mAP_diff_std": change["paired_diff_std"] if change["seeds"] > 1 else 0.0,
                     "holds_on_seeds": f"{int(change['better_on_seeds'])}/{int(change['seeds'])}"})
    return pd.DataFrame(rows)
