"""Command line entry point: ``python -m posedive_lib.cli run --profile quick``.

``run`` is the main job on the embedded default. It renders the condition gallery (the 3D
conditioning pipeline of the paper's Sec. 3.3 on Anny), builds the synthetic Re-ID world of the
profile (cached), saves their figures under ``results/<profile>/``, then executes the ordered
notebooks there (bias analysis, generator, augmentation, Re-ID) and writes ``summary.csv``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .accelerators import DEVICES
from .augment.condition_gallery import MODES
from .paths import PROJECT_ROOT, STAGE1_WEIGHTS, results_dir
from .profiles import PROFILES, profile_settings


def run(profile: str, out_dir: Path | None = None, seed: int = 0, workers: int | None = None,
        notebooks: bool = True, seeds: tuple[int, ...] = (0, 1, 2), device: str = "auto") -> list[Path]:
    from .accelerators import select_device
    from .analysis.world_figures import plot_identity_grid, plot_viewpoint_bias, save_figure
    from .data.synthetic.world import build_world
    from .gallery import render_gallery, save_gallery

    _check_seeds(seeds)
    print(f"runs on: {select_device(device)}")
    settings = profile_settings(profile)
    out_dir = Path(out_dir or results_dir() / profile)
    maps, table = render_gallery(settings.gallery_size, seed=seed)
    written = save_gallery(maps, table, out_dir)
    world = build_world(profile, seed=seed, workers=workers)
    print(f"synthetic world: {len(world.manifest)} images in {world.root}")
    for name, fig in (("synthetic_identities.png", plot_identity_grid(world.manifest, world.root)),
                      ("synthetic_viewpoints.png", plot_viewpoint_bias(world.manifest))):
        save_figure(fig, out_dir / name)
        written.append(out_dir / name)
    for path in written:
        print(f"wrote {path}")
    if notebooks:
        from .cpu_kernels import OPT_OUT, cpu_kernels, pinning
        from .notebooks import run_chain

        how = f"pinned for results that repeat across machines of one CPU vendor; {OPT_OUT}=native unpins" if pinning() else "not pinned"
        print(f"torch CPU kernels: {cpu_kernels()} ({how})")

        summary = run_chain(profile, run_name=out_dir.name, seeds=tuple(seeds), results_root=out_dir.parent,
                            device=device)
        print(summary.to_string(index=False))
        print(f"wrote {out_dir / 'summary.csv'} and the executed notebooks in {out_dir}")
    return written


def oracle_check(profile: str, seeds: list[int], out: Path | None = None, iterations: int | None = None) -> Path:
    """Small Re-ID preset on the biased train split vs train + oracle renders; one row per setting and seed."""
    from dataclasses import replace

    from .data.synthetic.world import build_world
    from .paths import cache_dir, config_key
    from .reid.data import select_training_rows
    from .reid.experiment import paired_summary, run_settings, write_table
    from .reid.train import PRESETS

    world = build_world(profile)
    m = world.manifest
    config = PRESETS["tiny"] if iterations is None else replace(PRESETS["tiny"], iterations=iterations)
    config = replace(config, P=min(config.P, world.config.n_train_ids))  # the smoke world has few identities
    settings = {
        "baseline": lambda: select_training_rows(m[m["set"] == "train"]),
        "oracle": lambda: select_training_rows(m[m["set"].isin(["train", "oracle"])]),
    }
    test = m[m["set"] == "test"]
    runs = cache_dir() / "runs" / f"oracle_check-{profile}-{world.config.key()}-{config_key(config, length=8)}"
    results = run_settings(settings, test, world.root, runs, seeds, config)
    path = write_table(results, out or results_dir() / "experiments" / "oracle_check.csv")
    summary = paired_summary(results, "baseline")
    write_table(summary.reset_index(), path.with_name(path.stem + "_summary.csv"))
    print(results.to_string(index=False))
    print(summary.to_string())
    print(f"wrote {path}")
    return path


def generator(profile: str, stage1_steps: int | None = None, stage2_steps: int | None = None,
              pretrained: str | None = None, vae_steps: int = 1500, out: Path | None = None, seed: int = 0,
              export: bool = False) -> Path:
    """Train the tiny generator on the synthetic world (VAE, stage 1, stage 2) and judge it by identity."""
    from .benchmarking import write_benchmark
    from .generator.experiment import export_stage1, generator_experiment

    out = Path(out or results_dir() / ("generator" if profile == "quick" else f"generator-{profile}"))
    result = generator_experiment(profile, out, stage1_steps, stage2_steps, pretrained, vae_steps, seed)
    if export:
        print(f"stage-1 weights exported to {export_stage1(result['run_dir'] / 'stage1' / 'generator')}")
    command = f"python -m posedive_lib.cli generator --profile {profile}" + (f" --pretrained {pretrained}" if pretrained else "")
    details = {**result["details"], "command": command}
    # results/benchmarks holds the record of the package's generator: the committed weights, quick profile
    package_generator = profile == "quick" and pretrained is not None and \
        (PROJECT_ROOT / pretrained).resolve() == (PROJECT_ROOT / STAGE1_WEIGHTS).resolve()
    path = write_benchmark("generator_identity_rank1", details["rank1_generated"],
                           "rank-1 identity retrieval of generated images among oracle renders", True, details,
                           out_dir=None if package_generator else out)
    print(json.dumps(details, indent=1))
    print(f"wrote {path} and figures in {out}")
    return path


def split_controls(profile: str, seeds: list[int], out: Path | None = None) -> Path:
    """Why generated images help or hurt on the MSMT17-S-style splits: each split with control settings
    (in-domain conditions, fewer images per identity) and the identity quality of its generated images
    against the main study's; tables in ``results/experiments``."""
    import pandas as pd

    from .augment.experiment import augmentation_set
    from .data.synthetic.world import build_world
    from .generator.experiment import profile_generator
    from .reid.experiment import paired_summary, write_table
    from .studies import augment_config, identity_quality, split_study

    world = build_world(profile)
    generator_dir = profile_generator(world, profile, seed=seeds[0], progress=True)
    gallery_size, config = profile_settings(profile).augment_gallery_size, augment_config(profile, seeds[0])
    sets = {"main_posedive": augmentation_set(world, "both", config, gallery_size, generator_dir),
            "main_in_domain": augmentation_set(world, "in_domain", config, gallery_size, generator_dir),
            "main_oracle": augmentation_set(world, "both", config, gallery_size, None)}
    runs, summaries = [], []
    for kind in ("cam", "pose"):
        study = split_study(world, kind, profile, seeds, generator_dir, progress=True, controls=True)
        runs.append(study["runs"])
        summaries.append(paired_summary(study["runs"], "baseline").reset_index().assign(split=kind))
        sets.update({f"{kind}_{name}": study["augmentation"][name] for name in ("posedive", "in_domain", "oracle")})
    out = Path(out or results_dir() / "experiments")
    path = write_table(pd.concat(runs, ignore_index=True), out / "msmt17s_controls_runs.csv")
    summary = pd.concat(summaries, ignore_index=True)
    write_table(summary, out / "msmt17s_controls_summary.csv")
    quality = identity_quality(world, profile, seeds[0], sets)
    write_table(quality, out / "msmt17s_controls_quality.csv")
    print(summary.to_string(index=False))
    print(quality.to_string(index=False))
    print(f"wrote {path} and its summary and quality tables")
    return path


def camera_bn(profile: str, seeds: list[int], out: Path | None = None) -> Path:
    """Camera-based against plain batch norm for the Re-ID model of the synthetic world, each on the train split,
    + Pose-dIVE and + oracle renders, seed by seed; tables in ``results/experiments``."""
    from .data.synthetic.world import build_world
    from .generator.experiment import profile_generator
    from .reid.experiment import paired_summary, write_table
    from .studies import camera_bn_gains, camera_bn_study

    world = build_world(profile)
    generator_dir = profile_generator(world, profile, seed=seeds[0], progress=True)
    runs = camera_bn_study(world, profile, seeds, generator_dir, progress=True)
    out = Path(out or results_dir() / "experiments")
    path = write_table(runs, out / "camera_bn_runs.csv")
    summary = paired_summary(runs, "bn")
    write_table(summary.reset_index(), out / "camera_bn_summary.csv")
    gains = camera_bn_gains(runs)
    write_table(gains, out / "camera_bn_gains.csv")
    print(summary.to_string())
    print(gains.to_string(index=False))
    print(f"wrote {path}, its summary and the gains of each batch norm's training sets")
    return path


def _write_study(runs, identity, out: Path | None, stem: str, length: str) -> Path:
    """Write a generator study's Re-ID runs, their paired summary, its identity table and the identity scores
    against the training ``length`` (a column of ``identity``) as a figure to ``out``."""
    from .analysis.generator_figures import plot_identity_by_length
    from .analysis.world_figures import save_figure
    from .reid.experiment import paired_summary, write_table

    out = Path(out or results_dir() / "experiments")
    path = write_table(runs, out / f"{stem}_runs.csv")
    summary = paired_summary(runs, "baseline")
    write_table(summary.reset_index(), out / f"{stem}_summary.csv")
    write_table(identity, out / f"{stem}_identity.csv")
    save_figure(plot_identity_by_length(identity, length, length.replace("_", " ")), out / f"{stem}_identity.png")
    print(identity.to_string(index=False))
    print(summary.to_string())
    print(f"wrote {path} and its summary and identity tables")
    return path


def fine_tuning(profile: str, seeds: list[int], stage2_steps: list[int], pretrained: str | None = None,
                out: Path | None = None) -> Path:
    """Generator fine-tuning length versus identity and Re-ID gain; tables in ``results/experiments``."""
    from .data.synthetic.world import build_world
    from .generator.experiment import committed_stage1
    from .studies import fine_tuning_study

    runs, identity = fine_tuning_study(build_world(profile), profile, seeds, stage2_steps,
                                       pretrained or committed_stage1(), progress=True)
    return _write_study(runs, identity, out, "generator_fine_tuning", "stage2_steps")


def stage1_length(profile: str, seeds: list[int], extra_steps: list[int], pretrained: str | None = None,
                  out: Path | None = None, export_to: str | None = None) -> Path:
    """Stage-1 length (continued pretraining) versus identity and Re-ID gain; tables in ``results/experiments``.
    ``export_to``: also save the longest continued stage 1 there (bf16), e.g. as the committed weights."""
    from .data.synthetic.world import build_world
    from .generator.experiment import (committed_stage1, continued_stages, export_stage1, profile_identity_check,
                                       save_identity_grid, trained_generator)
    from .studies import stage1_length_study

    pretrained = pretrained or committed_stage1()
    if pretrained is None:
        raise SystemExit("no stage-1 weights to continue: pass --pretrained or rebuild them with "
                         "`python -m posedive_lib.cli generator --profile quick --export-stage1`")
    world = build_world(profile)
    runs, identity = stage1_length_study(world, profile, seeds, extra_steps, pretrained, progress=True)
    path = _write_study(runs, identity, out, "generator_stage1_length", "stage1_extra_steps")
    longest = continued_stages(world, profile, extra_steps, pretrained, seeds[0])[max(extra_steps)]
    final, _ = trained_generator(world, profile, pretrained=longest, seed=seeds[0])  # all cached by the study
    scores, shown = profile_identity_check(final, world, profile, seeds[0])
    save_identity_grid(scores, shown, path.parent / "generator_stage1_length_grid.png")
    if export_to:
        print(f"stage 1 + {max(extra_steps)} steps exported to {export_stage1(longest, PROJECT_ROOT / export_to)}")
    return path


def train_generator_on_frames(frames: Path, out: Path, start: str | None = None, sd15: str | None = None,
                              clip: str | None = None, image_size: tuple[int, int] = (384, 192), steps: int = 1000,
                              batch: int = 16, lr: float = 1e-5, frames_per_clip: int | None = None, seed: int = 0) -> Path:
    """Train a generator on a folder of frames with their condition maps (``posedive_lib.generator.frames``): stage 1
    on fashion videos from Stable Diffusion 1.5 (``sd15`` and ``clip`` folders), or from a saved generator (``start``),
    e.g. stage 2 on a Re-ID training split laid out one folder per person."""
    from .generator.frames import train_on_frames
    from .generator.sizes import sd15_generator
    from .generator.train import GeneratorTrainConfig

    import torch

    config = GeneratorTrainConfig(steps=steps, batch=batch, lr=lr, seed=seed)
    if start is not None:
        final = train_on_frames(frames, out, saved_folder(start), config, frames_per_clip)
    else:
        torch.manual_seed(seed)  # the new pose guider's initial weights
        generator = sd15_generator(sd15, clip, image_size)
        final = train_on_frames(frames, out, generator, config, frames_per_clip,
                                start_name=f"sd15 {Path(sd15).resolve()} + clip {Path(clip).resolve()}, {image_size}")
    print(f"wrote the trained generator to {final} and its loss curve to {out / 'loss_curve.png'}")
    return final


def split_real_dataset(dataset: str, data_root: Path, kind: str, out: Path, seed: int = 0, **split_options) -> dict:
    """A real data set re-split as MSMT17-S (Cam or Pose), exported for `augment` and `reid`, with its Fig. 6."""
    import matplotlib.pyplot as plt

    from .data.dataset_split import resplit_title, split_dataset, split_overview

    result = split_dataset(dataset, data_root, kind, out, seed=seed, **split_options)
    overview = split_overview(result["split"], out, seed=seed, title=resplit_title(dataset, kind))
    plt.close(overview["figure"])
    print(overview["sizes"].to_string(index=False))
    print(overview["coverage"].to_string(index=False))
    print(f"wrote {out / 'split.json'}, split_manifest.csv, split_sizes.csv, split_coverage.csv, split.png and "
          f"{result['export']} (read it as --dataset market1501 in `augment` and `reid`)")
    return result


def augment_real_dataset(dataset: str, data_root: Path, generator_dir: str, out: Path, mode: str = "both",
                         per_id: int = 15, gallery_size: int = 2048, steps: int = 20, guidance: float = 3.5,
                         batch: int = 16, seed: int = 0, tau: float = 0.6, export: bool = True,
                         sweep_taus: tuple[float, ...] = (), sweep_per_id: tuple[int, ...] = ()) -> dict | None:
    """Generate, filter and export the Pose-dIVE augmentation of a real data set (``augment.dataset_augmentation``),
    with an export per sweep point."""
    from .augment.dataset_augmentation import AUGMENTATION_RECORD, augment_dataset
    from .augment.filtering import FilterThresholds
    from .augment.generate import AugmentConfig

    config = AugmentConfig(per_id=per_id, steps=steps, guidance_scale=guidance, batch=batch, seed=seed)
    result = augment_dataset(dataset, data_root, saved_folder(generator_dir), out, mode, config, gallery_size,
                             FilterThresholds.at(tau), export, sweep_taus=sweep_taus, sweep_per_id=sweep_per_id)
    if result is not None:
        generated, kept = len(result["generated"]), len(result["kept"])
        print(f"generated {generated} images in {out / 'generated'}; the keypoint filter (tau {tau}) kept {kept} "
              f"({kept / max(generated, 1):.0%}), every decision in {out / 'filter_decisions.csv'}")
        if result["export"] is not None:
            print(f"wrote {result['export']}: the data set with the kept images in bounding_box_train, in the "
                  "Market-1501 layout (Re-ID code bases' Market loaders read Market-1501 and CUHK03 exports; "
                  "`reid` reads any)")
        for name, folder in result["variants"].items():
            kept = json.loads((folder / AUGMENTATION_RECORD).read_text())["kept"]
            print(f"wrote {folder}: sweep point {name}, {kept} generated images")
        if tau in sweep_taus:
            print(f"sweep point tau {tau:g} is the main export's threshold: {result['export']}")
    return result


def quantity_control(augmented: Path, mars_root: Path, out: Path, seed: int = 0, all_mars: bool = False) -> dict:
    """The paper's Table 3 exports (diversity vs quantity at equal size) from a Market-1501 augmentation and MARS, and
    with ``all_mars`` Table 4's (all MARS frames of those people)."""
    from .data.quantity_control import ALL_MARS, DIVERSITY, QUANTITY, quantity_exports

    result = quantity_exports(augmented, mars_root, out, seed, all_mars=all_mars)
    counts = result["counts"]
    print(f"{len(counts)} people of the training split are in MARS (the paper: 619): {counts['real'].sum()} real images "
          f"(the paper: 11,883), + {counts['generated'].sum()} Pose-dIVE images ({result[DIVERSITY]}) or + "
          f"{counts['mars'].sum()} MARS frames ({result[QUANTITY]}); the paper adds 30 per person (--per-id 30)")
    if all_mars:
        print(f"all their MARS frames instead: {counts['mars_all'].sum()} ({result[ALL_MARS]}; the paper: 495,857)")
    exports = " ".join(str(result[name]) for name in (DIVERSITY, QUANTITY, ALL_MARS) if name in result)
    print(f"next: python -m posedive_lib.cli reid --augmented {exports} --out ...")
    return result


def reid_on_dataset(out: Path, seeds: list[int], preset: str = "bot", dataset: str | None = None,
                    data_root: Path | None = None, augmented=None, pretrained: str | None = None,
                    iterations: int | None = None):
    """Re-ID baseline (and + Pose-dIVE, given one or more exports of ``augment``) on a real data set, paired seeds."""
    import pandas as pd

    from .reid.dataset_study import dataset_study, save_comparison
    from .reid.train import preset_config

    runs = dataset_study(preset_config(preset, pretrained, iterations), seeds, out, dataset, data_root, augmented)
    summary = save_comparison(runs, out)
    print(runs[["setting", "seed", "mAP", "R1", "R5", "R10", "train_images"]].to_string(index=False))
    if summary is not None:
        print(summary.to_string())
    sweeps = sorted(out.glob("reid_sweep_*.csv"))  # written by save_comparison, for these runs
    for sweep in sweeps:
        print(f"{sweep.stem}:\n{pd.read_csv(sweep).to_string(index=False)}")
    print(f"wrote {out / 'reid_runs.csv'}" + (", reid_summary.csv, reid.png and reid_cmc.png" if summary is not None else "")
          + "".join(f", {sweep.name}" + (" and .png" if sweep.with_suffix(".png").is_file() else "") for sweep in sweeps))
    return runs


def readme_tables(check: bool = False, readme: Path | None = None) -> int:
    """Render the README's result tables from the committed run folders; with ``check``, only report stale ones."""
    from .analysis.readme_tables import update_readme

    readme = readme or PROJECT_ROOT / "README.md"
    stale = update_readme(readme, check=check)
    if not stale:
        print(f"{readme.name}: every result table matches the committed runs")
        return 0
    if check:
        print(f"{readme.name}: tables {stale} differ from the committed runs; run "
              "`python -m posedive_lib.cli readme-tables` and commit the README")
        return 1
    print(f"{readme.name}: rewrote tables {stale}")
    return 0


def _check_seeds(seeds) -> None:
    if len(seeds) < 1 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise SystemExit(f"--seeds must be distinct non-negative integers, got {list(seeds)}")


def saved_folder(path: str | os.PathLike) -> Path:
    """A folder argument of the real-data commands: as given (relative to the current folder) if it exists there,
    else relative to the project folder (e.g. models/tiny-stage1 from anywhere)."""
    path = Path(path)
    return path if path.exists() or path.is_absolute() else PROJECT_ROOT / path


def _is_saved_generator(folder: Path) -> bool:
    from .generator.model import is_saved_generator  # imported here: torch and diffusers load slowly

    return is_saved_generator(folder)


def _check_arguments(args: argparse.Namespace) -> None:
    """Refuse impossible values at once (one line, before any world is built), not minutes into a run."""
    if getattr(args, "seeds", None) is not None:
        _check_seeds(args.seeds)
    if getattr(args, "seed", 0) < 0:
        raise SystemExit(f"--seed must be non-negative, got {args.seed}")
    for name in ("workers", "iterations", "stage1_steps", "vae_steps", "steps", "batch", "per_id", "gallery_size"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    steps = getattr(args, "stage2_steps", None)
    if steps is not None and min(steps if isinstance(steps, list) else [steps]) < 1:
        raise SystemExit(f"--stage2-steps must be at least 1, got {steps}")
    extra = getattr(args, "extra_steps", None)
    if extra is not None and min(extra) < 0:
        raise SystemExit(f"--extra-steps must be non-negative (0: the weights as they are), got {extra}")
    if args.command == "train-generator":
        _check_frames_arguments(args)
    if args.command == "reid":
        _check_reid_arguments(args)
    if args.command == "augment":
        if not _is_saved_generator(saved_folder(args.generator)):
            raise SystemExit(f"--generator {args.generator}: no saved generator there (generator.json missing); train one "
                             "with `python -m posedive_lib.cli train-generator` and pass its generator/ folder")
        if not 0 <= args.tau <= 1 or args.guidance < 0:
            raise SystemExit(f"--tau must lie in [0, 1] and --guidance be non-negative, got {args.tau} and {args.guidance}")
        if (args.sweep_taus or args.sweep_per_id) and args.no_export:
            raise SystemExit("--sweep-taus and --sweep-per-id make exports, which --no-export skips: drop one or the other")
        from .augment.dataset_augmentation import check_sweep

        try:
            check_sweep(args.sweep_taus, args.sweep_per_id, args.per_id)
        except ValueError as error:
            raise SystemExit(f"--sweep-taus / --sweep-per-id: {error}") from None
    pretrained = getattr(args, "pretrained", None) if args.command != "reid" else None  # reid's: backbone weights
    if pretrained is not None and not _is_saved_generator(PROJECT_ROOT / pretrained):
        raise SystemExit(f"--pretrained {pretrained}: no saved generator there (generator.json missing); pass a folder "
                         f"written by PoseDiveGenerator.save_pretrained, e.g. {STAGE1_WEIGHTS}")
    if args.command == "generator" and pretrained is not None:
        given = [f for f, v in (("--export-stage1", args.export_stage1), ("--stage1-steps", args.stage1_steps),
                                ("--vae-steps", args.vae_steps)) if v]
        if given:
            raise SystemExit(f"{' and '.join(given)} set(s) the stage 1 that this command trains, but --pretrained "
                             "skips it: drop one or the other")
    out = getattr(args, "out", None)
    if args.command == "oracle-check" and out is not None and (out.is_dir() or out.suffix != ".csv"):
        raise SystemExit(f"--out {out}: give the path of a CSV file (e.g. results/experiments/oracle_check.csv)")


def _augmented(values: list[str] | None):
    """``--augmented``'s folders: a list, or ``{name: folder}`` when given as NAME=FOLDER (then all must be; a
    folder whose path holds '=' is read as a name only when the part before it is a plain word)."""
    pairs = [value.split("=", 1) for value in values or []]
    named = [pair for pair in pairs if len(pair) == 2 and pair[0].isidentifier()]
    if not named:
        return values
    if len(named) < len(values):
        raise SystemExit("--augmented: name every folder (NAME=FOLDER) or none")
    names = [name for name, _ in named]
    if len(set(names)) < len(names):
        raise SystemExit(f"--augmented: each name once, got {names}")
    return dict(named)


def _check_reid_arguments(args: argparse.Namespace) -> None:
    from .reid.train import PRESETS, preset_config  # torch loads here, only for this command

    if args.augmented is None and (args.dataset is None or args.data_root is None):
        raise SystemExit("reid: pass --augmented (the market_layout/ folder of `augment`: baseline and + Pose-dIVE) or "
                         "--dataset and --data-root (the baseline alone)")
    if args.augmented is not None and (args.dataset is not None or args.data_root is not None):
        raise SystemExit("reid: --augmented holds the data set already; --dataset and --data-root go without it")
    if args.preset not in PRESETS:
        raise SystemExit(f"--preset {args.preset!r}: use one of {sorted(PRESETS)}")
    try:
        preset_config(args.preset, args.pretrained)
    except (ValueError, FileNotFoundError) as error:
        raise SystemExit(f"--pretrained: {error}") from None
    if args.pretrained is None and not PRESETS[args.preset].backbone.startswith("tiny"):
        print(f"warning: --preset {args.preset} without --pretrained trains its backbone from random weights; the "
              "paper's Re-ID models start from ImageNet or CLIP weights", file=sys.stderr)


def _check_frames_arguments(args: argparse.Namespace) -> None:
    if (args.sd15 is None) != (args.clip is None):
        raise SystemExit("--sd15 and --clip go together: the Stable Diffusion 1.5 folder and the CLIP image encoder folder")
    if args.start is not None and not _is_saved_generator(saved_folder(args.start)):
        raise SystemExit(f"--start {args.start}: no saved generator there (generator.json missing); pass a folder written "
                         f"by PoseDiveGenerator.save_pretrained, e.g. {STAGE1_WEIGHTS}, or --sd15 and --clip")
    if not args.lr > 0:
        raise SystemExit(f"--lr must be positive, got {args.lr}")
    if args.frames_per_clip is not None and args.frames_per_clip < 2:
        raise SystemExit(f"--frames-per-clip must be at least 2 (a pair needs two frames of a clip), got {args.frames_per_clip}")
    if args.image_size is not None and args.start is not None:
        raise SystemExit("--image-size goes with --sd15: a saved generator (--start) keeps the size it was trained at")
    if args.image_size is not None and min(args.image_size) < 1:
        raise SystemExit(f"--image-size must be positive, got {args.image_size}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="posedive", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run the main job on the embedded default")
    run_p.add_argument("--profile", choices=sorted(PROFILES), default="quick", help="size of the run")
    run_p.add_argument("--out", type=Path, default=None, help="output folder (default results/<profile>)")
    run_p.add_argument("--seed", type=int, default=0)
    run_p.add_argument("--workers", type=int, default=None, help="rendering processes (default: all cores)")
    run_p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                       help="Re-ID training seeds of every experiment (default 0 1 2; the generator and its images use the first)")
    run_p.add_argument("--device", choices=DEVICES, default="auto",
                       help="auto (a CUDA GPU when torch sees one, else the CPU), cpu or cuda")
    run_p.add_argument("--skip-notebooks", action="store_true", help="only the gallery and world figures")
    oracle_p = sub.add_parser("oracle-check", help="Re-ID baseline vs + oracle renders on the synthetic world")
    oracle_p.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    oracle_p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    oracle_p.add_argument("--iterations", type=int, default=None, help="training iterations (default: the tiny preset)")
    oracle_p.add_argument("--out", type=Path, default=None, help="CSV path (default results/experiments/oracle_check.csv)")
    gen_p = sub.add_parser("generator", help="train the tiny generator on the synthetic world and judge it by identity")
    gen_p.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    gen_p.add_argument("--stage1-steps", type=int, default=None, help="default: the tiny_stage1 preset")
    gen_p.add_argument("--stage2-steps", type=int, default=None, help="default: the profile's")
    gen_p.add_argument("--vae-steps", type=int, default=None, help="default 1500")
    gen_p.add_argument("--pretrained", default=None,
                       help="a saved stage-1 generator: skip the VAE and stage 1 (relative to the project folder)")
    gen_p.add_argument("--out", type=Path, default=None, help="figure folder (default results/generator)")
    gen_p.add_argument("--export-stage1", action="store_true",
                       help=f"save the stage-1 weights (bf16) to {STAGE1_WEIGHTS}, replacing the committed ones; "
                            "`stage1-length --export-stage1` then continues them")
    gen_p.add_argument("--seed", type=int, default=0)
    tune_p = sub.add_parser("fine-tuning", help="generator fine-tuning length vs identity and Re-ID gain")
    tune_p.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    tune_p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    tune_p.add_argument("--stage2-steps", type=int, nargs="+", default=[400, 1200])
    tune_p.add_argument("--pretrained", default=None,
                        help="stage-1 weights (default: the committed ones; relative to the project folder)")
    tune_p.add_argument("--out", type=Path, default=None, help="table folder (default results/experiments)")
    length_p = sub.add_parser("stage1-length", help="stage 1 continued for more steps vs identity and Re-ID gain")
    length_p.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    length_p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    length_p.add_argument("--extra-steps", type=int, nargs="+", default=[0, 2000, 4000],
                          help="stage-1 steps added to the pretrained ones (0: as they are)")
    length_p.add_argument("--pretrained", default=None,
                        help="stage-1 weights (default: the committed ones; relative to the project folder)")
    length_p.add_argument("--out", type=Path, default=None, help="table folder (default results/experiments)")
    length_p.add_argument("--export-stage1", nargs="?", const=STAGE1_WEIGHTS, default=None, metavar="DIR",
                          help=f"save the longest continued stage 1 (bf16) to DIR (default {STAGE1_WEIGHTS})")
    controls_p = sub.add_parser("split-controls",
                                help="MSMT17-S-style splits with control settings: why generated images help or hurt there")
    controls_p.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    controls_p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    controls_p.add_argument("--out", type=Path, default=None, help="table folder (default results/experiments)")
    cbn_p = sub.add_parser("camera-bn", help="camera-based against plain batch norm, each with and without Pose-dIVE (paper Table 7)")
    cbn_p.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    cbn_p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    cbn_p.add_argument("--out", type=Path, default=None, help="table folder (default results/experiments)")
    frames_p = sub.add_parser("train-generator", help="train a generator on your frames with their condition maps")
    frames_p.add_argument("--frames", type=Path, required=True,
                          help="folder of clips: <clip>/images, depth, normal, skeleton (see posedive_lib.generator.frames)")
    frames_p.add_argument("--out", type=Path, required=True, help="run folder (resumes there; generator/ when done)")
    start = frames_p.add_mutually_exclusive_group(required=True)
    start.add_argument("--start", default=None, help="a saved generator to continue, e.g. models/tiny-stage1")
    start.add_argument("--sd15", default=None, help="a Stable Diffusion 1.5 folder (unet/, vae/, scheduler/); needs --clip")
    frames_p.add_argument("--clip", default=None, help="a CLIP image encoder folder (with --sd15)")
    frames_p.add_argument("--image-size", type=int, nargs=2, default=None, metavar=("H", "W"),
                          help="with --sd15: training size (default 384 192, the paper's stage 2)")
    frames_p.add_argument("--steps", type=int, default=1000)
    frames_p.add_argument("--batch", type=int, default=16)
    frames_p.add_argument("--lr", type=float, default=1e-5, help="AdamW learning rate (default 1e-5, the paper's)")
    frames_p.add_argument("--frames-per-clip", type=int, default=None, help="evenly spaced frames kept per clip")
    frames_p.add_argument("--seed", type=int, default=0)
    split_p = sub.add_parser("split", help="re-split a real data set as the paper's MSMT17-S (Cam or Pose) for augment and reid")
    split_p.add_argument("--dataset", required=True, help="msmt17 (the paper's), market1501, cuhk03, cuhk03_detected or dukemtmc")
    split_p.add_argument("--data-root", type=Path, required=True, help="the data set's folder (only read)")
    split_p.add_argument("--kind", choices=("cam", "pose"), required=True,
                         help="cam: train front and back views, test side views; pose: train and test pose clusters")
    split_p.add_argument("--out", type=Path, required=True, help="output folder (split.json, market_layout/, ...)")
    split_p.add_argument("--seed", type=int, default=0)
    split_p.add_argument("--test-fraction", type=float, default=0.5, help="share of identities that go to test")
    split_p.add_argument("--half-width", type=float, default=30.0, help="cam: degrees kept around the train sectors")
    split_p.add_argument("--gap", type=float, default=15.0, help="cam: degrees between the train and test sides")
    split_p.add_argument("--clusters", type=int, default=8, help="pose: k-means clusters of the poses")
    aug_p = sub.add_parser("augment", help="augment a real Re-ID data set with a trained generator (generate, filter, export)")
    aug_p.add_argument("--dataset", required=True, help="market1501, msmt17, cuhk03 (labeled), cuhk03_detected or dukemtmc")
    aug_p.add_argument("--data-root", type=Path, required=True, help="the data set's folder (only read)")
    aug_p.add_argument("--generator", required=True, help="a saved generator, e.g. the generator/ of train-generator")
    aug_p.add_argument("--out", type=Path, required=True, help="output folder (resumes there)")
    aug_p.add_argument("--mode", choices=MODES, default="both",
                       help="both (the paper's: external poses, uniform cameras), pose, viewpoint or in_domain")
    aug_p.add_argument("--per-id", type=int, default=15, help="generated images per identity (the paper's best: 15)")
    aug_p.add_argument("--gallery-size", type=int, default=2048, help="target conditions to draw from")
    aug_p.add_argument("--steps", type=int, default=20, help="DDIM steps")
    aug_p.add_argument("--guidance", type=float, default=3.5, help="classifier-free guidance scale")
    aug_p.add_argument("--batch", type=int, default=16)
    aug_p.add_argument("--seed", type=int, default=0)
    aug_p.add_argument("--tau", type=float, default=0.6, help="keypoint-confidence threshold (the paper's best: 0.6)")
    aug_p.add_argument("--no-export", action="store_true", help="skip the Market-1501-style export")
    aug_p.add_argument("--sweep-taus", type=float, nargs="+", default=[], metavar="TAU",
                       help="also export the images kept at each tau (market_layout_tau_<tau>/; the supplementary Fig. 4) "
                            "and as many unfiltered ones drawn at random (market_layout_tau_<tau>_random/)")
    aug_p.add_argument("--sweep-per-id", type=int, nargs="+", default=[], metavar="N",
                       help="also export the kept images of N slots per identity (market_layout_per_id_<N>/; Fig. 2)")
    quantity_p = sub.add_parser("quantity", help="the paper's Tables 3 and 4 exports: + Pose-dIVE vs + as many MARS "
                                "frames (vs all MARS frames)")
    quantity_p.add_argument("--augmented", type=Path, required=True,
                            help="the market_layout/ of `augment` on Market-1501")
    quantity_p.add_argument("--mars-root", type=Path, required=True, help="the MARS folder (bbox_train/; only read)")
    quantity_p.add_argument("--out", type=Path, required=True, help="output folder (diversity/, quantity/, mars/)")
    quantity_p.add_argument("--seed", type=int, default=0, help="draws the MARS frames")
    quantity_p.add_argument("--all-mars", action="store_true",
                            help="also export all MARS frames of these people as a training set (mars/; Table 4)")
    reid_p = sub.add_parser("reid", help="Re-ID on a real data set: baseline vs + the augmentation of `augment`, paired seeds")
    reid_p.add_argument("--augmented", nargs="+", default=None, metavar="[NAME=]FOLDER",
                        help="the market_layout/ folder that `augment` wrote, or several; settings are named by the "
                             "gallery mode (both, the paper's full method, as posedive) or as NAME=FOLDER")
    reid_p.add_argument("--dataset", default=None, help="without --augmented: the data set whose baseline to train")
    reid_p.add_argument("--data-root", type=Path, default=None, help="without --augmented: the data set's folder")
    reid_p.add_argument("--preset", default="bot",
                        help="bot (ResNet-50, bag of tricks), cbn (bot with camera-based batch normalisation), diffid "
                             "(the Diff-ID preprint's recipe), clip (needs --pretrained), tiny or tiny_cbn")
    reid_p.add_argument("--pretrained", default=None, help="backbone weights folder (transformers ResNet-50 or CLIP)")
    reid_p.add_argument("--iterations", type=int, default=None, help="default: the preset's")
    reid_p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    reid_p.add_argument("--out", type=Path, required=True, help="output folder (runs resume there)")
    tables_p = sub.add_parser("readme-tables", help="render the README's result tables from the committed runs")
    tables_p.add_argument("--check", action="store_true", help="only report tables that differ (exit status 1)")
    args = parser.parse_args(argv)
    _check_arguments(args)
    try:
        return _dispatch(args)
    except (ValueError, FileNotFoundError, NotImplementedError) as error:  # bad input: one line, the fix included
        if os.environ.get("POSEDIVE_TRACEBACK"):
            raise
        raise SystemExit(f"posedive {args.command}: {error}\n(set POSEDIVE_TRACEBACK=1 for the traceback, e.g. if "
                         "this looks like a bug rather than bad input)") from None


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        run(args.profile, args.out, args.seed, args.workers, not args.skip_notebooks, tuple(args.seeds), args.device)
    elif args.command == "oracle-check":
        oracle_check(args.profile, args.seeds, args.out, args.iterations)
    elif args.command == "generator":
        generator(args.profile, args.stage1_steps, args.stage2_steps, args.pretrained, args.vae_steps or 1500, args.out,
                  args.seed, args.export_stage1)
    elif args.command == "fine-tuning":
        fine_tuning(args.profile, args.seeds, args.stage2_steps, args.pretrained, args.out)
    elif args.command == "stage1-length":
        stage1_length(args.profile, args.seeds, args.extra_steps, args.pretrained, args.out, args.export_stage1)
    elif args.command == "split-controls":
        split_controls(args.profile, args.seeds, args.out)
    elif args.command == "camera-bn":
        camera_bn(args.profile, args.seeds, args.out)
    elif args.command == "train-generator":
        train_generator_on_frames(args.frames, args.out, args.start, args.sd15, args.clip, tuple(args.image_size or (384, 192)),
                                  args.steps, args.batch, args.lr, args.frames_per_clip, args.seed)
    elif args.command == "split":
        options = {"cam": {"half_width": args.half_width, "gap": args.gap}, "pose": {"clusters": args.clusters}}[args.kind]
        split_real_dataset(args.dataset, args.data_root, args.kind, args.out, args.seed,
                           test_fraction=args.test_fraction, **options)
    elif args.command == "augment":
        augment_real_dataset(args.dataset, args.data_root, args.generator, args.out, args.mode, args.per_id,
                             args.gallery_size, args.steps, args.guidance, args.batch, args.seed, args.tau,
                             not args.no_export, args.sweep_taus, args.sweep_per_id)
    elif args.command == "quantity":
        quantity_control(args.augmented, args.mars_root, args.out, args.seed, args.all_mars)
    elif args.command == "reid":
        reid_on_dataset(args.out, args.seeds, args.preset, args.dataset, args.data_root, _augmented(args.augmented),
                        args.pretrained,
                        args.iterations)
    elif args.command == "readme-tables":
        return readme_tables(args.check)
    return 0


if __name__ == "__main__":
    sys.exit(main())
