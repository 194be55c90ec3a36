"""The paper's MSMT17-S custom splits (Sec. 4.4, Table 5) of a real data set on disk, end to end.

The data set's people are pooled (train, query and gallery: :func:`~posedive_lib.data.real_datasets.pooled_identities`),
every image is annotated with mediapipe's keypoints and viewpoint (cached and resumable; MSMT17's 126,441 images take
about an hour on two CPU cores), and :func:`~posedive_lib.data.splits.make_split` divides them into a Cam or a Pose
split. The result is written to ``out_dir``:

- ``split.json``: the definition (identities, sectors or cluster centres; rebuilds the split with ``apply_split``);
- ``split_manifest.csv``: every kept image with its new split, viewpoint and keypoints (paths under the data set);
- ``market_layout/``: the split as a Market-1501-style folder (hard links), which ``augment`` and ``reid`` read as
  ``market1501``, as any other data set.

Images where mediapipe finds no person have no viewpoint or pose and are left out (with a warning).
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import pandas as pd

SPLIT_FILE = "split.json"
SPLIT_MANIFEST = "split_manifest.csv"
EXPORT_FOLDER = "market_layout"


def split_dataset(dataset: str, data_root: str | os.PathLike, kind: str, out_dir: str | os.PathLike, seed: int = 0,
                  progress: bool = True, **split_options) -> dict:
    """Re-split ``dataset`` (a loader name) at ``data_root`` as MSMT17-S: ``kind`` ``cam`` (train front and back
    views, test side views) or ``pose`` (k-means pose clusters on either side). ``split_options`` go to
    :func:`~posedive_lib.data.splits.make_split` (``test_fraction``, ``half_width``, ``gap``, ``clusters``, ...).
    Returns ``{"definition", "split", "export"}``."""
    from ..augment.keypoints import annotated
    from .export import export_market_layout
    from .manifest import write_manifest
    from .real_datasets import load_dataset, pooled_identities
    from .splits import apply_split, check_split_options, make_split, save_split

    check_split_options(kind, **split_options)  # before an hour of annotation
    data_root, out_dir = Path(data_root), Path(out_dir)
    if out_dir.resolve().is_relative_to(data_root.resolve()):
        raise ValueError(f"the split's folder {out_dir} lies in the data set's folder {data_root}, which is only read: "
                         "give an --out outside it")
    if data_root.resolve().is_relative_to((out_dir / EXPORT_FOLDER).resolve()):  # re-splitting a split in its place
        raise ValueError(f"the split would replace {out_dir / EXPORT_FOLDER}, the data set it reads ({data_root}): give "
                         "another --out")
    manifest = load_dataset(dataset, data_root)
    name = manifest["dataset"].iloc[0]
    pool = annotated(pooled_identities(manifest), data_root, progress)
    found = pool["kp_found"].astype(bool)
    if not found.any():
        raise ValueError(f"mediapipe found no person in the {len(pool)} images of {data_root}, so their viewpoints and "
                         "poses are unknown; check that the folder holds person crops")
    if not found.all():
        warnings.warn(f"{(~found).sum()} of {len(pool)} images have no person found by mediapipe and are left out of "
                      "the split", stacklevel=2)
    definition = {**make_split(pool[found], kind, seed=seed, **split_options), "dataset": name}
    split = apply_split(pool[found], definition)
    split = split.drop(columns=["kp_found"])
    # the export first, whole or not at all and with its own definition; the two files beside it follow
    export_market_layout(split, {name: data_root}, out_dir / EXPORT_FOLDER, link=True, overwrite=True,
                         extra_files={SPLIT_FILE: json.dumps(definition, indent=1)})
    write_manifest(split, out_dir / SPLIT_MANIFEST)
    save_split(definition, out_dir / SPLIT_FILE)
    return {"definition": definition, "split": split, "export": out_dir / EXPORT_FOLDER}


def load_split_aware(dataset: str, root: str | os.PathLike) -> pd.DataFrame:
    """:func:`~posedive_lib.data.real_datasets.load_dataset`, with a split's export (the ``market_layout/`` of
    :func:`split_dataset`, read as ``market1501``) named after the split, e.g. ``msmt17_s_cam``, so the results made
    from it say where they come from."""
    from .real_datasets import load_dataset
    from .splits import load_split

    manifest = load_dataset(dataset, root)
    if not (Path(root) / SPLIT_FILE).is_file():
        return manifest
    definition = load_split(Path(root) / SPLIT_FILE)
    return manifest.assign(dataset=f"{definition.get('dataset', 'dataset')}_s_{definition['kind']}")


def split_annotations(rows: pd.DataFrame, root: str | os.PathLike) -> pd.DataFrame | None:
    """``rows`` of a split's export at ``root`` with the keypoints and viewpoints that :func:`split_dataset` estimated
    (from ``split_manifest.csv`` beside the export, through its ``mapping.csv``), so they are not estimated again;
    None when ``root`` is no such export or any row is not found there."""
    from ..augment.keypoints import ANNOTATION_COLUMNS
    from .export import MAPPING_FILE
    from .manifest import read_manifest

    root = Path(root)
    files = [root / SPLIT_FILE, root / MAPPING_FILE, root.parent / SPLIT_MANIFEST]
    if root.name != EXPORT_FOLDER or not all(f.is_file() for f in files):
        return None
    original = pd.read_csv(files[1]).set_index("file")["path"]
    estimated = read_manifest(files[2]).drop_duplicates("path").set_index("path")
    sources = rows["path"].map(original)
    if sources.isna().any() or not sources.isin(estimated.index).all():
        return None
    found = estimated.loc[sources, [c for c in ANNOTATION_COLUMNS if c != "kp_found"]].reset_index(drop=True)
    return pd.concat([rows.drop(columns=list(ANNOTATION_COLUMNS), errors="ignore").reset_index(drop=True),
                      found.assign(kp_found=True)], axis=1)


def resplit_title(dataset: str, kind: str) -> str:
    """``market1501 re-split as MSMT17-S Cam``: the title of a real data set's re-split figure."""
    return f"{dataset} re-split as MSMT17-S {kind.capitalize()}"


def split_overview(split: pd.DataFrame, out_dir: str | os.PathLike, per_set: int = 1500, seed: int = 0,
                   name: str = "split", title: str | None = None) -> dict:
    """The paper's Fig. 6 for a split manifest, written to ``out_dir``: ``sizes`` (images and identities per split,
    ``<name>_sizes.csv``), ``coverage`` (viewpoint entropy and pose diversity of the train and test sides,
    ``<name>_coverage.csv``) and ``figure`` (their viewpoints and a pose t-SNE, ``<name>.png``, titled ``title`` or else ``name``)."""
    from ..analysis.bias import coverage_table, plot_bias, pose_tsne
    from ..analysis.world_figures import save_figure
    from .splits import split_sizes

    out_dir = Path(out_dir)
    sides = {"train": split[split["split"] == "train"], "test": split[split["split"] != "train"]}
    overview = {"sizes": split_sizes(split), "coverage": coverage_table(sides),
                "figure": plot_bias(sides, pose_tsne(sides, per_set=per_set, seed=seed))}
    overview["figure"].suptitle(title or name, y=1.02)
    overview["sizes"].to_csv(out_dir / f"{name}_sizes.csv", index=False)
    overview["coverage"].to_csv(out_dir / f"{name}_coverage.csv", index=False)
    save_figure(overview["figure"], out_dir / f"{name}.png")
    return overview
