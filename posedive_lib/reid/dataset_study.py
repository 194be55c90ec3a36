"""Re-ID on a real data set on disk: the baseline against the same data set augmented by ``cli augment`` (its
Market-1501-style export), every setting with the same seeds, compared seed by seed (the paper's Table 1 protocol).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd

from .experiment import run_settings
from .train import TrainConfig


def augmented_export(folder: str | os.PathLike) -> pd.DataFrame:
    """The manifest of an export written by ``cli augment`` (``market_layout/``), each row's ``source`` (real or
    generated) taken from its ``mapping.csv``."""
    from ..data.export import MAPPING_FILE
    from ..data.real_datasets import load_market1501

    folder = Path(folder)
    if not (folder / MAPPING_FILE).is_file():
        raise FileNotFoundError(f"{folder} has no {MAPPING_FILE}: pass the market_layout/ folder that "
                                "`python -m posedive_lib.cli augment` wrote")
    manifest = load_market1501(folder)
    source = pd.read_csv(folder / MAPPING_FILE).set_index("file")["source"]
    unknown = ~manifest["path"].isin(source.index)
    if unknown.any():
        raise ValueError(f"{folder}: {int(unknown.sum())} images (first {manifest['path'][unknown].iloc[0]}) are not in "
                         f"its {MAPPING_FILE}; export the augmented data set again with `cli augment`")
    return manifest.assign(source=manifest["path"].map(source))


def dataset_study(config: TrainConfig, seeds: list[int], out_dir: str | os.PathLike, dataset: str | None = None,
                  data_root: str | os.PathLike | None = None, augmented: str | os.PathLike | None = None,
                  progress: bool = True) -> pd.DataFrame:
    """Train and evaluate ``baseline`` (the real training images) and, with ``augmented`` (an export of
    ``cli augment``), ``posedive`` (plus the kept generated images) on the data set's query and gallery; one row
    per setting and seed. Without ``augmented``, the baseline of ``dataset`` at ``data_root``.

    Runs live in ``out_dir/runs`` (reused when finished, resumed when interrupted). A preset's batch asks for
    ``config.P`` identities; a data set with fewer training identities gets a smaller P (a stand-in, not a real set).
    """
    from ..data.real_datasets import load_dataset

    if augmented is not None:
        root = Path(augmented)
        manifest = augmented_export(root)
        train = manifest[manifest["split"] == "train"]
        settings = {"baseline": lambda: train[train["source"] == "real"].reset_index(drop=True),
                    "posedive": lambda: train.reset_index(drop=True)}
    elif dataset is not None and data_root is not None:
        root = Path(data_root)
        manifest = load_dataset(dataset, root)
        train = manifest[manifest["split"] == "train"]
        settings = {"baseline": lambda: train.reset_index(drop=True)}
    else:
        raise ValueError("give the augmented export (augmented=, --augmented) or a data set and its folder "
                         "(dataset= and data_root=, --dataset and --data-root)")
    identities = train.loc[train["source"] == "real", "pid"].nunique()
    if identities < config.P:
        config = replace(config, P=max(2, identities))
    runs = Path(out_dir) / "runs" / hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:10]
    test = manifest[manifest["split"].isin(["query", "gallery"])]
    return run_settings(settings, test, root, runs, seeds, config, progress)
