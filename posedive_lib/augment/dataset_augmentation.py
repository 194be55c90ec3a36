"""Pose-dIVE augmentation of a real Re-ID data set on disk, end to end: the paper's Step 2 for Market-1501, MSMT17,
CUHK03-NP or DukeMTMC-reID with a trained generator, ready for any Re-ID code base.

Reads the data set with its loader, renders the condition gallery at the generator's image size, generates
``per_id`` images per training identity (resumable, sharded over ``accelerate`` processes), filters them by
keypoint confidence (every decision kept in ``filter_decisions.csv``) and exports the training set plus the kept
images, with the data set's query and gallery, as a Market-1501-style folder (``market_layout/``, JPEGs hard-linked
where the file system allows) that CLIP-ReID, SOLIDER-REID, torchreid and fast-reid read unchanged. Generated images go to ``<out>/generated``; the data set's
folder is only read.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from .condition_gallery import UNIFORM_VIEWPOINT_MODES, GalleryConfig, build_condition_gallery
from .filtering import FilterThresholds, apply_thresholds, keypoint_statistics
from .generate import AugmentConfig, augment

GENERATED_SUFFIX = "-posedive"  # the generated rows' data set name in the export (their folder differs)


def augment_dataset(dataset: str, data_root: str | os.PathLike, generator_dir: str | os.PathLike,
                    out_dir: str | os.PathLike, mode: str = "both", config: AugmentConfig = AugmentConfig(),
                    gallery_size: int = 2048, thresholds: FilterThresholds = FilterThresholds(), export: bool = True,
                    progress: bool = True) -> dict | None:
    """Augment ``dataset`` (a loader name, e.g. ``market1501``) at ``data_root`` with the saved generator.

    ``mode`` is a gallery mode: ``both`` (the paper's: external poses, uniform cameras) and ``viewpoint`` need
    nothing more; ``pose`` and ``in_domain`` draw viewpoints from the training set, whose viewpoints are first
    estimated with mediapipe (cached; images where no person is found are not used as references). Returns ``{"generated", "decisions", "kept", "export"}`` (manifests and the export folder), or None
    on a process other than the main one.
    """
    from ..data.real_datasets import load_dataset
    from ..generator.model import PoseDiveGenerator, saved_generator
    from .keypoints import PoseEstimator, annotated

    data_root, out_dir = Path(data_root), Path(out_dir)
    # the generator first: a wrong folder is named before minutes of gallery rendering
    generator = PoseDiveGenerator.from_pretrained(saved_generator(generator_dir)).eval()
    manifest = load_dataset(dataset, data_root)
    train = manifest[manifest["split"] == "train"].reset_index(drop=True)
    if mode not in UNIFORM_VIEWPOINT_MODES:
        train = annotated(train, data_root, progress)
        train = train[train["kp_found"].astype(bool)].reset_index(drop=True)
    height, width = generator.image_size
    gallery = build_condition_gallery(GalleryConfig(size=gallery_size, mode=mode, width=width, height=height,
                                                    seed=config.seed), train_viewpoints=train, progress=progress)
    generated = augment(train, data_root, gallery, out_dir / "generated", config, generator=generator,
                        tag=f"{dataset}-{mode}", progress=progress)
    if generated is None:
        return None
    estimator = PoseEstimator()
    try:
        stats = keypoint_statistics(generated, out_dir / "generated", gallery, estimator, progress=progress,
                                    parent_root=data_root)
    finally:
        estimator.close()
    decisions = apply_thresholds(stats, thresholds)
    decisions.to_csv(out_dir / "filter_decisions.csv", index=False)
    kept = generated[decisions["keep"].to_numpy()]
    kept = kept.assign(dataset=kept["dataset"] + GENERATED_SUFFIX)
    folder = None
    if export:
        from ..data.export import export_market_layout

        folder = out_dir / "market_layout"
        roots = {**{name: data_root for name in manifest["dataset"].unique()},
                 **{name: out_dir / "generated" for name in kept["dataset"].unique()}}
        combined = pd.concat([manifest, kept[manifest.columns.intersection(kept.columns)]], ignore_index=True)
        export_market_layout(combined, roots, folder, link=True, overwrite=True)
    return {"generated": generated, "decisions": decisions, "kept": kept, "export": folder}
