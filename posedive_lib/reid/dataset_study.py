"""Re-ID on a real data set on disk: the baseline against the same data set augmented by ``cli augment`` (its
Market-1501-style export), every setting with the same seeds, compared seed by seed (the paper's Table 1 protocol).
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ..paths import config_key
from .experiment import run_settings
from .train import TrainConfig

UNKEYED_RECORD_FIELDS = ("mode", "per_id")  # in augmentation.json, left out of the runs' keys (_data_key)


def augmented_export(folder: str | os.PathLike) -> pd.DataFrame:
    """The manifest of an export written by ``cli augment`` (``market_layout/``), each row's ``source`` (real or
    generated) and the data set's name taken from its ``mapping.csv``."""
    from ..data.export import MAPPING_FILE
    from ..data.real_datasets import load_market1501

    folder = Path(folder)
    _require_mapping(folder)
    manifest, mapping = load_market1501(folder), pd.read_csv(folder / MAPPING_FILE)
    source = mapping.set_index("file")["source"]
    unknown = ~manifest["path"].isin(source.index)
    if unknown.any():
        raise ValueError(f"{folder}: {int(unknown.sum())} images (first {manifest['path'][unknown].iloc[0]}) are not in "
                         f"its {MAPPING_FILE}; export the augmented data set again with `cli augment`")
    exported = mapping.loc[mapping["source"] == "real", "dataset"].iloc[0]  # the loader's name of the data set
    return manifest.assign(source=manifest["path"].map(source), dataset=exported)


def _require_mapping(folder: Path) -> None:
    from ..data.export import MAPPING_FILE

    if not (folder / MAPPING_FILE).is_file():
        raise FileNotFoundError(f"{folder} has no {MAPPING_FILE}: pass the market_layout/ folder that "
                                "`python -m posedive_lib.cli augment` wrote")


def dataset_study(config: TrainConfig, seeds: list[int], out_dir: str | os.PathLike, dataset: str | None = None,
                  data_root: str | os.PathLike | None = None,
                  augmented: str | os.PathLike | Sequence | Mapping[str, str | os.PathLike] | None = None,
                  progress: bool = True) -> pd.DataFrame:
    """Train and evaluate ``baseline`` (the real training images) and, with ``augmented`` (an export of
    ``cli augment``, or several: see :func:`named_exports`; e.g. one per gallery mode, as the paper's Table 2),
    ``posedive`` (or each setting: the training images of that export, the real ones plus its kept generated images,
    or for ``cli quantity``'s exports its MARS frames) on the data set's query and gallery; one row per setting and
    seed, with the data set's name and ``extra_images``, the setting's training images that are not the data set's
    own (for Table 4's ``mars``, all of them). Without ``augmented``, the baseline of ``dataset`` at ``data_root``.

    Runs live in ``out_dir/runs`` (reused when finished, resumed when interrupted). A preset's batch asks for
    ``config.P`` identities; a data set with fewer training identities gets a smaller P (a stand-in, not a real set).
    """
    from ..data.dataset_split import load_split_aware

    if augmented is not None:
        exports = named_exports(augmented)
        if not exports or "baseline" in exports:
            raise ValueError(f"name each augmented export (not 'baseline'), got {sorted(exports)}")
        manifests = {name: augmented_export(folder) for name, folder in exports.items()}
        first = _check_same_data_set(exports)
        manifest, root = manifests[first], exports[first]
        train = manifest[(manifest["split"] == "train") & (manifest["source"] == "real")]
        settings, roots = {"baseline": train}, {"baseline": root, **exports}
        for name, rows in manifests.items():
            rows = rows[rows["split"] == "train"]
            if not rows.empty and (rows["source"] == "real").all():  # it would train the baseline's images again
                raise ValueError(f"{exports[name]} holds no generated images (the keypoint filter kept none): augment "
                                 "again with a lower --tau (no new pose estimation), or train the baseline alone with "
                                 "--dataset and --data-root")
            settings[name] = rows
    elif dataset is not None and data_root is not None:
        root = Path(data_root)
        manifest = load_split_aware(dataset, root)
        train = manifest[manifest["split"] == "train"]
        settings, roots = {"baseline": train}, {"baseline": root}
    else:
        raise ValueError("give the augmented export (augmented=, --augmented) or a data set and its folder "
                         "(dataset= and data_root=, --dataset and --data-root)")
    identities = train["pid"].nunique()
    if identities < config.P:
        config = replace(config, P=max(2, identities))
    test = manifest[manifest["split"].isin(["query", "gallery"])]
    folders = {name: Path(out_dir) / "runs" / f"{_data_key(roots[name], name, augmented is not None)}-"
                                              f"{config_key(config, length=8)}"
               for name in settings}  # each setting's runs keyed by what it trains on (see _data_key)
    runs = run_settings({name: lambda rows=rows: rows.reset_index(drop=True) for name, rows in settings.items()},
                        test, roots, folders, seeds, config, progress)
    added = {name: int((rows["source"] != "real").sum()) for name, rows in settings.items()}
    runs = runs.assign(dataset=manifest["dataset"].iloc[0], extra_images=runs["setting"].map(added))
    return _with_records(runs, exports) if augmented is not None else runs


def _with_records(runs: pd.DataFrame, exports: Mapping[str, Path]) -> pd.DataFrame:
    """Each setting's ``mode``, sweep ``variant``, ``per_id``, ``tau`` (all three confidence thresholds at tau, else
    empty) and generation ``plan`` from its export's ``augmentation.json``; the baseline has 0 generated images per
    identity."""
    columns = {"baseline": {"per_id": 0}}
    for name, folder in exports.items():
        record = export_record(folder)
        thresholds = record.get("thresholds") or {}  # a random control has none
        taus = {thresholds.get(k) for k in ("tau_ref", "tau_tar", "tau_gen")}
        columns[name] = {"mode": record.get("mode"), "variant": record.get("variant"), "per_id": record.get("per_id"),
                         "tau": taus.pop() if len(taus) == 1 else None, "plan": record.get("plan")}
    table = pd.DataFrame.from_dict(columns, orient="index", columns=["mode", "variant", "per_id", "tau", "plan"])
    return runs.join(table, on="setting")


def export_record(folder: Path) -> dict:
    """The ``augmentation.json`` of an export of ``augment`` (how it was made), or {} when it has none."""
    from ..augment.dataset_augmentation import AUGMENTATION_RECORD

    record = folder / AUGMENTATION_RECORD
    return json.loads(record.read_text()) if record.is_file() else {}


def named_exports(augmented: str | os.PathLike | Sequence[str | os.PathLike] | Mapping[str, str | os.PathLike]
                  ) -> dict[str, Path]:
    """``{setting: export}``: exports named by the gallery mode in their ``augmentation.json`` (``both``, the paper's
    full method, as ``posedive``; one export without a record too) and its sweep point (``posedive_tau_0.3``,
    ``posedive_per_id_5``), or as given in a mapping. The same folder twice
    is refused (its runs would be trained twice into one folder)."""
    from ..augment.dataset_augmentation import AUGMENTATION_RECORD

    if isinstance(augmented, (str, os.PathLike)):
        augmented = [augmented]
    if isinstance(augmented, Mapping):
        exports = {str(name): Path(folder) for name, folder in augmented.items()}
    else:
        exports = {}
        for folder in map(Path, augmented):
            _require_mapping(folder)
            record = export_record(folder)
            mode = record.get("mode")
            if mode is None and len(augmented) > 1:
                raise ValueError(f"{folder} has no {AUGMENTATION_RECORD} naming its gallery mode: name it "
                                 "(NAME=FOLDER), or export it again with `cli augment`")
            name = "posedive" if mode in (None, "both") else mode
            name += f"_{record['variant']}" if record.get("variant") else ""
            if name in exports:
                kind = f"in mode {mode!r}" + (f", sweep point {record['variant']}" if record.get("variant") else "")
                raise ValueError(f"{exports[name]} and {folder} are both augmentations {kind}: name them "
                                 "(NAME=FOLDER) to compare them")
            exports[name] = folder
    folders = [folder.resolve() for folder in exports.values()]
    if len(set(folders)) < len(folders):
        raise ValueError(f"one export is given under two names ({sorted(exports)}): give each folder once")
    return exports


def _check_same_data_set(exports: Mapping[str, Path]) -> str:
    """Exports compared in one study must hold the same real images (train, query and gallery) under the same names;
    an export without real training images (another training set of the same people, Table 4's MARS) the same query
    and gallery and the same training people. Returns the name of the first export with real training images (the
    baseline's)."""
    from ..data.export import MAPPING_FILE

    mappings = {name: pd.read_csv(folder / MAPPING_FILE) for name, folder in exports.items()}
    real = {name: _real_rows(mapping) for name, mapping in mappings.items()}
    with_train = [name for name, rows in real.items() if (rows["split"] == "train").any()]
    if not with_train:
        raise ValueError(f"none of the exports {sorted(exports)} holds real training images to train the baseline on: "
                         "pass the augmentation's export too (for Table 4, the diversity/ export beside mars/)")
    first = with_train[0]
    people = set(real[first].loc[real[first]["split"] == "train", "pid"])
    other = []
    for name, rows in real.items():
        reference = real[first]
        if name not in with_train:  # only its query and gallery, and its training people
            reference = reference[reference["split"] != "train"].reset_index(drop=True)
            train = mappings[name][mappings[name]["split"] == "train"]
            if set(train["pid"]) != people:
                raise ValueError(f"{exports[name]} trains on other people than the baseline of {exports[first]}: "
                                 "compare it with the diversity/ export that `cli quantity --all-mars` wrote with it")
        if not rows.equals(reference):
            other.append(name)
    if other:
        raise ValueError(f"the exports of {other} hold other real images than that of {first!r} ({exports[first]}): "
                         "compare augmentations of one data set, each exported by `cli augment` (or `cli quantity`)")
    return first


def _real_rows(mapping: pd.DataFrame) -> pd.DataFrame:
    """The rows of an export's ``mapping.csv`` for real images of the data set."""
    return mapping[mapping["source"] == "real"].reset_index(drop=True)


def _data_key(root: Path, setting: str, export: bool) -> str:
    """What a setting's runs train on. In an export, by its contents: the baseline by the real rows of its mapping
    (unchanged when the augmentation is re-made), an augmented setting by the whole mapping and the augmentation
    record (the generator's plan, the mode and the thresholds), not by its name; so moving or renaming an export keeps
    the runs and re-making it retrains only that setting. A data set folder by its place."""
    from ..augment.dataset_augmentation import AUGMENTATION_RECORD
    from ..data.export import MAPPING_FILE

    # every augmented setting is seeded as "posedive" (its first name), so runs keep their keys under any name
    digest = hashlib.sha1(("baseline" if setting == "baseline" else "posedive").encode())
    if not export:
        digest.update(str(root.resolve()).encode())
    elif setting == "baseline":
        digest.update(_real_rows(pd.read_csv(root / MAPPING_FILE)).to_csv(index=False).encode())
    else:
        digest.update((root / MAPPING_FILE).read_bytes())
        if (root / AUGMENTATION_RECORD).is_file():  # hashed as first written, without its mode and per_id (the plan
            record = export_record(root)  # covers them); a sweep point's name is hashed (its images may be the main's)
            digest.update(json.dumps({k: v for k, v in record.items() if k not in UNKEYED_RECORD_FIELDS},
                                     indent=1).encode())
    return digest.hexdigest()[:10]


def save_comparison(runs: pd.DataFrame, out_dir: str | os.PathLike) -> pd.DataFrame | None:
    """Write the runs of :func:`dataset_study` (``reid_runs.csv``, with an ``experiment`` column for the run's summary)
    and, when they hold augmented settings, the paired summary against the baseline (``reid_summary.csv``), its bars
    (``reid.png``) and CMC curves (``reid_cmc.png``), and the sweeps over ``augment``'s variants (:func:`save_sweeps`);
    returns the summary (None for a baseline alone)."""
    from ..analysis.world_figures import save_figure
    from .experiment import paired_summary, plot_cmc, plot_settings, write_table

    out_dir = Path(out_dir)
    write_table(runs.assign(experiment="real_main"), out_dir / "reid_runs.csv")
    order = ["baseline", *dict.fromkeys(s for s in runs["setting"] if s != "baseline")]
    if len(order) == 1:
        for name in ("reid_summary.csv", "reid.png", "reid_cmc.png"):  # an earlier comparison's, now stale
            (out_dir / name).unlink(missing_ok=True)
        save_sweeps(runs, out_dir)  # none: removes an earlier comparison's
        return None
    summary = paired_summary(runs, "baseline").reindex(order)
    write_table(summary.reset_index(), out_dir / "reid_summary.csv")
    save_figure(plot_settings(runs, order), out_dir / "reid.png", close=True)
    save_figure(plot_cmc(runs, order), out_dir / "reid_cmc.png", close=True)
    save_sweeps(runs, out_dir)
    return summary


SWEEP_LABELS = {"per_id": "generated images per identity (0: baseline)",
                "tau": "keypoint-confidence threshold tau (all three)"}


def sweep_tables(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The paper's supplementary sweeps from runs of :func:`dataset_study` over sweep variants (``augment``'s
    ``sweep_per_id`` and ``sweep_taus``): per gallery mode with variants, mean and std over seeds of mAP and R1 per
    number of generated images per identity (``per_id``, the baseline at 0; supplementary Fig. 2) and per filter
    threshold (``tau``; Fig. 4), each with its mode's main export; keyed ``per_id`` / ``tau`` for mode ``both``,
    ``per_id_<mode>`` / ``tau_<mode>`` for another."""
    from ..augment.dataset_augmentation import RANDOM_CONTROL_SUFFIX
    from .experiment import sweep_table

    if "variant" not in runs or runs["variant"].isna().all():
        return {}
    tables = {}
    for mode, rows in runs[runs["mode"].notna()].groupby("mode"):
        if rows["plan"].nunique() > 1 and rows["variant"].notna().any():
            warnings.warn(f"the {mode!r} exports come from {rows['plan'].nunique()} augmentations (other images): no "
                          "sweep is drawn for that mode; compare the exports of one `augment` run", stacklevel=2)
            continue
        main = rows[rows["variant"].isna()]
        for parameter in SWEEP_LABELS:
            variant = rows["variant"].fillna("")
            swept = rows[variant.str.startswith(f"{parameter}_") & ~variant.str.endswith(RANDOM_CONTROL_SUFFIX)]
            if swept.empty:
                continue
            members = pd.concat([runs[runs["setting"] == "baseline"] if parameter == "per_id" else None, main, swept])
            members = members.dropna(subset=[parameter])
            points = dict(zip(members["setting"], members[parameter].astype(float if parameter == "tau" else int)))
            tables[parameter if mode == "both" else f"{parameter}_{mode}"] = sweep_table(members, points, parameter)
    return tables


def matched_tables(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per gallery mode whose tau sweep points have their random controls (``augment``'s ``tau_<tau>_random``): each
    filtered setting against as many unfiltered images drawn at random, seed by seed
    (:func:`~posedive_lib.reid.experiment.matched_control_table`); keyed ``tau_matched`` for mode ``both``,
    ``tau_matched_<mode>`` for another."""
    from ..augment.dataset_augmentation import RANDOM_CONTROL_SUFFIX, tau_name
    from .experiment import matched_control_table

    if "variant" not in runs:
        return {}
    tables = {}
    for mode, rows in runs[runs["mode"].notna()].groupby("mode"):
        if rows["plan"].nunique() > 1:  # exports of other augmentations: not one another's controls (sweep_tables warns)
            continue
        settings = rows.drop_duplicates("setting").set_index("setting")
        controls = settings[settings["variant"].astype(object).fillna("").str.endswith(RANDOM_CONTROL_SUFFIX)]
        main_point = settings["tau"].map(lambda tau: tau_name(tau) if pd.notna(tau) else None).where(
            settings["variant"].isna())  # the main export is the sweep point of its own tau
        pairs = {}
        for control, record in controls.iterrows():
            point = record["variant"].removesuffix(RANDOM_CONTROL_SUFFIX)  # tau_0.3
            filtered = settings[settings["variant"] == point]  # the sweep point, else the main export at that tau
            filtered = filtered if len(filtered) else settings[main_point == point]
            if len(filtered):
                pairs[float(filtered["tau"].iloc[0])] = (filtered.index[0], control)
        try:
            table = matched_control_table(rows, dict(sorted(pairs.items()))) if pairs else None
        except ValueError as error:  # e.g. a control exported with another --tau: skip it, keep the other tables
            warnings.warn(f"no matched filter table for the {mode!r} exports: {error}", stacklevel=2)
            continue
        if table is not None:
            tables["tau_matched" if mode == "both" else f"tau_matched_{mode}"] = table.reset_index()
    return tables


def save_sweeps(runs: pd.DataFrame, out_dir: Path) -> dict[str, pd.DataFrame]:
    """Write each of :func:`sweep_tables` as ``reid_sweep_<key>.csv`` and its plot (``.png``; the tau plot with the
    baseline as a dashed line), and each of :func:`matched_tables` as ``reid_sweep_<key>.csv``; an earlier run's sweep
    files that these runs no longer hold are removed."""
    from ..analysis.world_figures import save_figure
    from .experiment import plot_sweep, write_table

    matched = matched_tables(runs)
    for key, table in matched.items():
        write_table(table, out_dir / f"reid_sweep_{key}.csv")
    tables = sweep_tables(runs)
    baseline = runs.loc[runs["setting"] == "baseline", ["mAP", "R1"]].mean()
    for key, table in tables.items():
        parameter = table.columns[0]  # sweep_table's first column: the swept parameter
        write_table(table.reset_index(), out_dir / f"reid_sweep_{key}.csv")
        save_figure(plot_sweep(table, parameter, xlabel=SWEEP_LABELS[parameter],
                               baseline=baseline if parameter == "tau" else None), out_dir / f"reid_sweep_{key}.png",
                    close=True)
    for stale in out_dir.glob("reid_sweep_*"):
        key = stale.stem.removeprefix("reid_sweep_")
        if key not in tables and not (key in matched and stale.suffix == ".csv"):
            stale.unlink()
    return {**tables, **matched}
