"""The paper's Tables 3 and 4 on Market-1501: diversity against quantity.

From an ``augment`` export of Market-1501 and the MARS data set (more frames of the same people, from the same
videos), exports restricted to the people of Market-1501's training split that MARS also has (the paper's 619):

- ``diversity/``: their real images plus Pose-dIVE's kept images of them ((III) of both tables, ``posedive`` in
  ``reid``);
- ``quantity/``: their real images plus as many MARS frames per person as Pose-dIVE added for that person, drawn at
  random with the seed (Table 3's (II), ``quantity``; source ``extra`` in ``mapping.csv``);
- ``mars/``, with ``all_mars``: all their MARS frames instead of their Market-1501 images (Table 4's (II), ``mars``;
  the paper's 495,857 frames, about 40 times the baseline).

All hold Market-1501's query and gallery unchanged; the first two hold the same real training images, which ``reid``
trains as the baseline ((I)). MARS numbers its people as Market-1501 does, so people are matched by pid.
"""
from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

DIVERSITY, QUANTITY, ALL_MARS = "diversity", "quantity", "mars"


def quantity_exports(export: str | os.PathLike, mars_root: str | os.PathLike, out_dir: str | os.PathLike,
                     seed: int = 0, all_mars: bool = False) -> dict:
    """Write ``out_dir/diversity`` and ``out_dir/quantity`` (and with ``all_mars``, ``out_dir/mars``, else an earlier
    ``mars/`` is removed; Market-1501 layout, hard links) from ``export`` (the ``market_layout/`` of ``augment`` on
    Market-1501) and MARS at ``mars_root``; returns the folders by name and ``"counts"`` (per person: real, generated
    and drawn MARS images, and with ``all_mars`` all of that person's MARS frames, ``mars_all``)."""
    from ..augment.dataset_augmentation import AUGMENTATION_RECORD
    from ..reid.dataset_study import augmented_export, export_record
    from .export import export_market_layout
    from .real_datasets import load_mars_train

    export, out_dir = Path(export), Path(out_dir)
    for folder in (export, Path(mars_root)):
        if out_dir.resolve().is_relative_to(folder.resolve()):
            raise ValueError(f"the output folder {out_dir} lies in {folder}, which is only read: give an --out outside it")
    manifest = augmented_export(export)
    if manifest["dataset"].iloc[0] != "market1501":  # MARS's pids are Market-1501's people, nobody else's
        raise ValueError(f"{export} is an augmentation of {manifest['dataset'].iloc[0]}, not of Market-1501 (its own "
                         "split): MARS holds more frames of Market-1501's people only")
    mars = load_mars_train(mars_root)
    train = manifest[manifest["split"] == "train"]
    real, generated = train[train["source"] == "real"], train[train["source"] == "generated"]
    shared = sorted(set(real["pid"]) & set(mars["pid"]))
    if not shared:
        raise ValueError(f"no person of {export}'s training split is in MARS ({mars_root}): pass an augmentation of "
                         "Market-1501, whose people MARS numbers the same way")
    generated = generated[generated["pid"].isin(shared)]
    if generated.empty:
        raise ValueError(f"{export} holds no generated image of the {len(shared)} people MARS has: augment again with "
                         "a lower --tau")
    extra = _frames_per_person(mars, generated.groupby("pid").size(), seed)
    # real rows first, in the same order, so both exports name them alike and train the same baseline
    fixed = pd.concat([real[real["pid"].isin(shared)], manifest[manifest["split"] != "train"]], ignore_index=True)
    records = {DIVERSITY: {**export_record(export), "kept": len(generated), "people": "mars"},
               QUANTITY: {"mode": QUANTITY, "source": "mars", "seed": seed, "kept": len(extra)}}
    frames = {DIVERSITY: pd.concat([fixed, generated], ignore_index=True),
              QUANTITY: pd.concat([fixed, extra.drop(columns="tracklet")], ignore_index=True)}
    if all_mars:  # Table 4: MARS instead of Market-1501's training images, Market-1501's query and gallery
        every = mars[mars["pid"].isin(shared)].drop(columns="tracklet").assign(source="extra")
        records[ALL_MARS] = {"mode": ALL_MARS, "source": "mars", "kept": len(every)}
        frames[ALL_MARS] = pd.concat([every, manifest[manifest["split"] != "train"]], ignore_index=True)
    roots = {**{name: export for name in manifest["dataset"].unique()}, "mars": Path(mars_root)}
    for name, frame in frames.items():
        export_market_layout(frame, roots, out_dir / name, link=True, overwrite=True,
                             extra_files={AUGMENTATION_RECORD: json.dumps(records[name], indent=1)})
    if not all_mars and (out_dir / ALL_MARS / AUGMENTATION_RECORD).is_file():  # an earlier run's, not of this export
        shutil.rmtree(out_dir / ALL_MARS)
    counts = {"real": fixed[fixed["split"] == "train"].groupby("pid").size(),
              "generated": generated.groupby("pid").size(), "mars": extra.groupby("pid").size()}
    if all_mars:
        counts["mars_all"] = every.groupby("pid").size()
    counts = pd.DataFrame(counts).fillna(0).astype(int).rename_axis("pid")
    return {**{name: out_dir / name for name in frames}, "counts": counts}


def _frames_per_person(mars: pd.DataFrame, quota: pd.Series, seed: int) -> pd.DataFrame:
    """``quota[pid]`` MARS frames of each person, drawn uniformly without replacement with ``seed`` (the paper does not
    say how it drew its subset); where a person has fewer, all of them, and the shortfall from the other people's
    remaining frames, so the total still matches (warned); source ``extra``."""
    rng = np.random.default_rng(seed)
    frames = mars[mars["pid"].isin(quota.index)].reset_index(drop=True)
    if len(frames) < quota.sum():
        raise ValueError(f"MARS holds {len(frames)} frames of these people, fewer than the {int(quota.sum())} images "
                         "Pose-dIVE added: augment with a smaller --per-id")
    picked = []
    for pid, rows in frames.groupby("pid"):
        take = min(int(quota[pid]), len(rows))
        picked += rows.index[np.sort(rng.choice(len(rows), take, replace=False))].tolist()
    short = int(quota.sum()) - len(picked)
    if short:
        picked += np.sort(rng.choice(frames.index.difference(picked), short, replace=False)).tolist()
        warnings.warn(f"MARS has fewer frames than Pose-dIVE added for some people: {short} of the quantity set's frames "
                      "are other people's", stacklevel=3)
    return frames.loc[sorted(picked)].reset_index(drop=True).assign(source="extra")
