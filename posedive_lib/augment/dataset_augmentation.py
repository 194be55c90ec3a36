"""Pose-dIVE augmentation of a real Re-ID data set on disk, end to end: the paper's Step 2 for Market-1501, MSMT17,
CUHK03-NP or DukeMTMC-reID with a trained generator, ready for any Re-ID code base.

Reads the data set with its loader, renders the condition gallery at the generator's image size, generates
``per_id`` images per training identity (resumable, sharded over ``accelerate`` processes), filters them by
keypoint confidence (every decision kept in ``filter_decisions.csv``) and exports the training set plus the kept
images, with the data set's query and gallery, as a Market-1501-style folder (``market_layout/``, JPEGs hard-linked
where the file system allows). Generated images go to ``<out>/generated``; the data set's folder is only read.
Re-ID code bases read a Market-1501 or CUHK03 export with their Market-1501 loader; their loaders check Market's
pid range (up to 1501) and six one-digit cameras, which MSMT17 (15 cameras, 3,060 identities) and DukeMTMC-reID
(8 cameras, pids up to 7,140) exports exceed: relax those checks, or read the folder with a loader like
:func:`~posedive_lib.data.real_datasets.load_market1501`.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..paths import atomic_output
from .condition_gallery import UNIFORM_VIEWPOINT_MODES, GalleryConfig, build_condition_gallery
from .filtering import FilterThresholds, apply_thresholds, cached_keypoint_statistics
from .generate import AugmentConfig, augment

AUGMENTATION_RECORD = "augmentation.json"  # in the export: the plan and thresholds that made it
GENERATED_SUFFIX = "-posedive"  # the generated rows' data set name in the export (their folder differs)


def augment_dataset(dataset: str, data_root: str | os.PathLike, generator_dir: str | os.PathLike,
                    out_dir: str | os.PathLike, mode: str = "both", config: AugmentConfig = AugmentConfig(),
                    gallery_size: int = 2048, thresholds: FilterThresholds = FilterThresholds(), export: bool = True,
                    progress: bool = True) -> dict | None:
    """Augment ``dataset`` (a loader name, e.g. ``market1501``) at ``data_root`` with the saved generator.

    ``mode`` is a gallery mode: ``both`` (the paper's: external poses, uniform cameras) and ``viewpoint`` need
    nothing more; ``pose`` and ``in_domain`` draw viewpoints from the training set, whose viewpoints are first
    estimated with mediapipe (cached; images where no person is found are not used as references). Each process
    samples on its device (a GPU in bf16 where it has one). Returns ``{"generated", "decisions", "kept", "export",
    "gallery"}`` (manifests, the export folder and the condition gallery), or None on a process other than the main
    one.
    """
    from accelerate import PartialState

    from ..data.dataset_split import load_split_aware
    from ..generator.model import PoseDiveGenerator, saved_generator, weights_digest

    data_root, out_dir = Path(data_root), Path(out_dir)
    # the generator first: a wrong folder is named before minutes of gallery rendering
    generator = PoseDiveGenerator.from_pretrained(saved_generator(generator_dir)).eval()
    manifest = load_split_aware(dataset, data_root)
    name = manifest["dataset"].iloc[0]  # the loader's name, whatever alias was given
    train = manifest[manifest["split"] == "train"].reset_index(drop=True)
    state = PartialState()
    with state.main_process_first():  # the main process fills the caches; the others read them
        if mode not in UNIFORM_VIEWPOINT_MODES:
            train = _with_viewpoints(train, data_root, progress and state.is_main_process)
        height, width = generator.image_size
        gallery = build_condition_gallery(GalleryConfig(size=gallery_size, mode=mode, width=width, height=height,
                                                        seed=config.seed), train_viewpoints=train,
                                          progress=progress and state.is_main_process)
    _note_precision(out_dir / "generated", _to_sampling_device(generator, state.device), state.is_main_process)
    generated = augment(train, data_root, gallery, out_dir / "generated", config, generator=generator,
                        tag=f"{name}-{mode}", progress=progress, generator_key=weights_digest(generator_dir))
    if generated is None:
        return None
    plan = json.loads((out_dir / "generated" / "plan.json").read_text())["digest"]
    # cached by the plan that made the images (its digest covers references, conditions, sampler and generator)
    stats = cached_keypoint_statistics(generated, out_dir / "generated", gallery, out_dir / f"keypoint_statistics-{plan}.csv",
                                       progress, parent_root=data_root)
    decisions = apply_thresholds(stats, thresholds)
    with atomic_output(out_dir / "filter_decisions.csv") as tmp:
        decisions.to_csv(tmp, index=False)
    kept = generated[decisions["keep"].to_numpy()]
    kept = kept.assign(dataset=kept["dataset"] + GENERATED_SUFFIX)
    folder = None
    if export:
        from ..data.export import export_market_layout

        folder = out_dir / "market_layout"
        roots = {**{name: data_root for name in manifest["dataset"].unique()},
                 **{name: out_dir / "generated" for name in kept["dataset"].unique()}}
        combined = pd.concat([manifest, kept[manifest.columns.intersection(kept.columns)]], ignore_index=True)
        record = {"mode": mode, "plan": plan, "thresholds": asdict(thresholds), "kept": len(kept)}  # keys Re-ID runs
        export_market_layout(combined, roots, folder, link=True, overwrite=True,
                             extra_files={AUGMENTATION_RECORD: json.dumps(record, indent=1)})
    return {"generated": generated, "decisions": decisions, "kept": kept, "export": folder, "gallery": gallery}


def _with_viewpoints(train: pd.DataFrame, data_root: Path, progress: bool) -> pd.DataFrame:
    """The training rows where mediapipe finds a person, with its viewpoint estimate (cached); warns about the rest."""
    import warnings

    from ..data.dataset_split import split_annotations
    from .keypoints import annotated

    found = split_annotations(train, data_root)  # a split's export: estimated when it was made
    found = annotated(train, data_root, progress) if found is None else found
    found = found[found["kp_found"].astype(bool)].reset_index(drop=True)
    if found.empty:
        raise ValueError(f"mediapipe found no person in the {len(train)} training images of {data_root}, so their "
                         "viewpoints are unknown: use mode 'both' or 'viewpoint' (uniform cameras)")
    lost = train["pid"].nunique() - found["pid"].nunique()
    if len(found) < len(train):
        warnings.warn(f"{len(train) - len(found)} of {len(train)} training images have no person found by mediapipe and "
                      f"serve as neither reference nor viewpoint ({lost} identities left without any)", stacklevel=3)
    return found


def _note_precision(folder: Path, precision: str, main_process: bool) -> None:
    """Record how a folder's images are sampled (``sampling.json``, by its first run); warn when an unfinished folder
    is resumed in another precision, whose images will differ from the first ones (not refused: the plan is the same)."""
    import warnings

    record = folder / "sampling.json"
    if record.is_file():
        first = json.loads(record.read_text()).get("precision")
        if first != precision and not (folder / "manifest.csv").is_file():
            warnings.warn(f"{folder} was begun on {first} and resumes on {precision}: its images will mix both (delete "
                          "the folder to sample every image one way)", stacklevel=3)
    elif main_process and not (folder / "plan.json").is_file():  # a folder begun before this record: unknown
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_output(record) as tmp:
            tmp.write_text(json.dumps({"precision": precision}))


def _to_sampling_device(generator, device) -> str:
    """Move the generator to this process's device, in bf16 on a GPU that computes it natively (fp32 elsewhere);
    name the choice (e.g. ``cuda bfloat16``)."""
    import torch

    from ..accelerators import native_bf16

    dtype = torch.bfloat16 if device.type == "cuda" and native_bf16() else torch.float32
    generator.to(device, dtype)
    return f"{device.type} {str(dtype).replace('torch.', '')}"


def generation_examples(result: dict, data_root: str | os.PathLike, out_dir: str | os.PathLike, rows: int = 8) -> dict:
    """Reference, target condition maps and generated image of the first generated image of ``rows`` identities
    (for :func:`~posedive_lib.analysis.generator_figures.plot_generation_grid`)."""
    import torch

    from ..data.images import read_rgb
    from ..generator.data import stack_conditions

    picked = result["generated"].drop_duplicates("pid").head(rows)
    size = result["gallery"].depth.shape[1:3]
    index = result["gallery"].table.reset_index().set_index("condition_id").loc[picked["condition_id"], "index"]
    load = lambda root, paths: torch.from_numpy(  # noqa: E731
        np.stack([read_rgb(Path(root) / p, size, "bicubic") for p in paths])).permute(0, 3, 1, 2)
    maps = result["gallery"].maps()
    return {"references": load(data_root, picked["parent"]), "generated": load(Path(out_dir) / "generated", picked["path"]),
            "conditions": stack_conditions({k: v[index.to_numpy()] for k, v in maps.items()}).float() / 255}
