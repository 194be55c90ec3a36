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
import shutil
from dataclasses import asdict, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..paths import atomic_output
from .condition_gallery import UNIFORM_VIEWPOINT_MODES, GalleryConfig, build_condition_gallery
from .filtering import FilterThresholds, apply_thresholds, cached_keypoint_statistics, random_subset
from .generate import AugmentConfig, augment

AUGMENTATION_RECORD = "augmentation.json"  # in the export: the plan and thresholds that made it
SWEEP_PREFIX = "market_layout_"  # + a sweep point's name (tau_0.3, per_id_5): its export beside market_layout/
RANDOM_CONTROL_SUFFIX = "_random"  # a tau sweep point's control: tau_0.3_random holds as many unfiltered images
GENERATED_SUFFIX = "-posedive"  # the generated rows' data set name in the export (their folder differs)


def augment_dataset(dataset: str, data_root: str | os.PathLike, generator_dir: str | os.PathLike,
                    out_dir: str | os.PathLike, mode: str = "both", config: AugmentConfig = AugmentConfig(),
                    gallery_size: int = 2048, thresholds: FilterThresholds = FilterThresholds(), export: bool = True,
                    progress: bool = True, sweep_taus: Sequence[float] = (), sweep_per_id: Sequence[int] = ()
                    ) -> dict | None:
    """Augment ``dataset`` (a loader name, e.g. ``market1501``) at ``data_root`` with the saved generator.

    ``mode`` is a gallery mode: ``both`` (the paper's: external poses, uniform cameras) and ``viewpoint`` need
    nothing more; ``pose`` and ``in_domain`` draw viewpoints from the training set, whose viewpoints are first
    estimated with mediapipe (cached; images where no person is found are not used as references). Each process
    samples on its device (a GPU in bf16 where it has one).

    ``sweep_taus`` and ``sweep_per_id`` export variants for the paper's supplementary sweeps (Figs. 4 and 2) from the
    same images, with no new generation or pose estimation: ``market_layout_tau_<tau>/`` keeps the images that pass
    with all three confidence thresholds at tau (epsilon_gen as in ``thresholds``), ``market_layout_per_id_<n>/`` the
    kept images of the first ``n`` slots of each identity. A variant that keeps no image is not exported (warned), a
    tau at the main export's thresholds is the main export, and sweep exports of an earlier run are removed. Each tau
    also exports its control, ``market_layout_tau_<tau>_random/``: as many generated images drawn at random, unfiltered,
    so that `reid` can tell the filter's effect from that of adding fewer images (supplementary Fig. 4 matches counts).

    Returns ``{"generated", "decisions", "kept", "export", "variants", "gallery"}`` (manifests, the export folder,
    ``{variant: folder}`` and the condition gallery), or None on a process other than the main one.
    """
    from accelerate import PartialState

    from ..data.dataset_split import load_split_aware
    from ..generator.model import PoseDiveGenerator, saved_generator, weights_digest

    data_root, out_dir = Path(data_root), Path(out_dir)
    check_sweep(sweep_taus, sweep_per_id, config.per_id)
    if (sweep_taus or sweep_per_id) and not export:
        raise ValueError("sweep_taus and sweep_per_id make exports, which export=False skips: drop one or the other")
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
    folder, variants = None, {}
    if export:
        record = {"mode": mode, "plan": plan, "per_id": config.per_id}
        folder = _export(manifest, kept, data_root, out_dir, "market_layout", {**record, "thresholds": asdict(thresholds)})
        sweep = _sweep_variants(generated, stats, kept, thresholds, config.per_id, sweep_taus, sweep_per_id, config.seed)
        for name, (rows, used, per_id) in sweep.items():
            variants[name] = _export(manifest, rows, data_root, out_dir, f"{SWEEP_PREFIX}{name}",
                                     {**record, "per_id": per_id, "thresholds": asdict(used) if used else None,
                                      "variant": name})
        for stale in set(out_dir.glob(f"{SWEEP_PREFIX}*")) - set(variants.values()):  # an earlier run's sweep points:
            shutil.rmtree(stale)  # made with other thresholds or images, they would mix into this run's sweeps
    return {"generated": generated, "decisions": decisions, "kept": kept, "export": folder, "variants": variants,
            "gallery": gallery}


def check_sweep(taus: Sequence[float], per_id_counts: Sequence[int], per_id: int) -> None:
    """Refuse sweep points that cannot be exported: a tau outside [0, 1], a count outside 1 .. per_id - 1, a repeat
    (two taus that name one folder included)."""
    def numbers(values, types) -> bool:
        return isinstance(values, (list, tuple, np.ndarray)) and all(isinstance(v, types) and not isinstance(v, bool)
                                                                     for v in values)

    if (not numbers(taus, (int, float, np.number)) or len({tau_name(t) for t in taus}) < len(taus)
            or not all(0 <= t <= 1 for t in taus)):
        raise ValueError(f"sweep taus must be a list of distinct confidences in [0, 1], got {taus!r}")
    if per_id_counts and per_id < 2:
        raise ValueError(f"a sweep of images per identity needs per_id of at least 2 (got {per_id}): its points are "
                         "counts below per_id")
    if not numbers(per_id_counts, (int, np.integer)) or len(set(per_id_counts)) < len(per_id_counts) or not all(
            1 <= n < per_id for n in per_id_counts):
        raise ValueError(f"sweep per-id counts must be distinct whole numbers from 1 to per_id - 1 ({per_id - 1}), got "
                         f"{per_id_counts!r} (per_id itself is the main export)")


def tau_name(tau: float) -> str:
    """A tau sweep point's name (its export is ``market_layout_<name>``), e.g. ``tau_0.3``."""
    return f"tau_{float(tau):g}"


def _sweep_variants(generated: pd.DataFrame, stats: pd.DataFrame, kept: pd.DataFrame, thresholds: FilterThresholds,
                    per_id: int, taus: Sequence[float], per_id_counts: Sequence[int], seed: int) -> dict[str, tuple]:
    """``{variant: (kept rows, thresholds, images per identity)}`` for each sweep point that keeps an image (the others
    are warned of); a tau whose thresholds are the main export's is that export, not a variant. Each tau also gets
    ``tau_<tau>_random``: as many of the generated images, unfiltered, drawn at random with ``seed`` (no thresholds)."""
    import warnings

    variants = {}
    unfiltered = generated.assign(dataset=generated["dataset"] + GENERATED_SUFFIX)
    for tau in map(float, taus):  # plain numbers: they go into JSON records
        used = replace(thresholds, tau_ref=tau, tau_tar=tau, tau_gen=tau)  # epsilon_gen and extra filters as given
        rows = kept if used == thresholds else unfiltered[apply_thresholds(stats, used)["keep"].to_numpy()]
        if used != thresholds:
            variants[tau_name(tau)] = (rows, used, per_id)
        if len(rows):  # its control: as many generated images drawn at random, unfiltered (compared in `reid`)
            variants[f"{tau_name(tau)}{RANDOM_CONTROL_SUFFIX}"] = (random_subset(unfiltered, len(rows), seed), None, per_id)
    for n in map(int, per_id_counts):
        variants[f"per_id_{n}"] = (kept[kept["slot"] < n], thresholds, n)
    empty = [name for name, (rows, _, _) in variants.items() if rows.empty]
    if empty:
        warnings.warn(f"the sweep points {empty} keep no generated image and are not exported", stacklevel=3)
    return {name: variant for name, variant in variants.items() if name not in empty}


def _export(manifest: pd.DataFrame, kept: pd.DataFrame, data_root: Path, out_dir: Path, name: str, record: dict) -> Path:
    """The data set plus the ``kept`` generated rows as ``out_dir/name`` (Market-1501 layout, with ``record``)."""
    from ..data.export import export_market_layout

    roots = {**{dataset: data_root for dataset in manifest["dataset"].unique()},
             **{dataset: out_dir / "generated" for dataset in kept["dataset"].unique()}}
    combined = pd.concat([manifest, kept[manifest.columns.intersection(kept.columns)]], ignore_index=True)
    export_market_layout(combined, roots, out_dir / name, link=True, overwrite=True,
                         extra_files={AUGMENTATION_RECORD: json.dumps({**record, "kept": len(kept)}, indent=1)})
    return out_dir / name


def _with_viewpoints(train: pd.DataFrame, data_root: Path, progress: bool) -> pd.DataFrame:
    """The training rows where mediapipe finds a person, with its viewpoint estimate (cached); warns about the rest."""
    import warnings

    from .keypoints import annotated

    found = annotated(train, data_root, progress)  # a split's export: as estimated when it was made
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
