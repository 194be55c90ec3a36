"""The tiny generator on the synthetic world, end to end: VAE -> stage 1 (fashion set) -> stage 2 (train split)
-> identity check against oracle renders. Every step is cached by its inputs, so a re-run reuses it.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..data.synthetic.world import SyntheticWorld
from ..data.synthetic.world_conditions import world_conditions
from ..paths import PROJECT_ROOT, STAGE1_WEIGHTS, atomic_output, cache_dir, config_key
from ..profiles import profile_settings
from .data import PairData, load_images, stack_conditions, to_uint8
from .model import PoseDiveGenerator, is_saved_generator, saved_generator, weights_digest
from .previews import TrainingPreview
from .train import PRESETS, GeneratorTrainConfig, train_generator


def committed_stage1() -> str | None:
    """``STAGE1_WEIGHTS`` if those weights are present in this checkout, else None."""
    return STAGE1_WEIGHTS if is_saved_generator(PROJECT_ROOT / STAGE1_WEIGHTS) else None


def profile_stage1(profile: str) -> str | None:
    """Where ``profile``'s stage 2 starts: the committed stage-1 weights, except at smoke (stage 1 trains here,
    in seconds)."""
    return committed_stage1() if profile_settings(profile).name != "smoke" else None


def profile_generator(world: SyntheticWorld, profile: str, seed: int = 0, progress: bool = False) -> Path:
    """The generator folder that notebooks 3 to 6 and the CLI use: ``profile``'s stage 2 from
    :func:`profile_stage1` (trained once, then cached)."""
    return trained_generator(world, profile, pretrained=profile_stage1(profile), seed=seed, progress=progress)[0]


def export_stage1(generator_dir: str | os.PathLike, target: str | os.PathLike | None = None) -> Path:
    """Save a trained stage-1 generator in bfloat16 (small enough to commit) to ``target``."""
    target = Path(target or PROJECT_ROOT / STAGE1_WEIGHTS)
    generator = PoseDiveGenerator.from_pretrained(generator_dir)
    log = stage1_loss_log(generator_dir)
    log = log.read_bytes() if log is not None else None  # read first: the target may be the source folder
    generator.to(torch.bfloat16).save_pretrained(target)
    if log is not None:  # the stage-1 loss curve travels with the weights
        (target / "loss.csv").write_bytes(log)
    return target


def pair_data(generator: PoseDiveGenerator, world: SyntheticWorld, set_name: str) -> PairData:
    rows = world.subset(set_name)
    conditions = stack_conditions(world_conditions(world, set_name))
    return PairData.from_images(generator, rows["pid"].values, load_images(rows, world.root), conditions)


def train_stages(world: SyntheticWorld, out_dir: str | os.PathLike, stage1: GeneratorTrainConfig | None = PRESETS["tiny_stage1"],
                 stage2: GeneratorTrainConfig | None = PRESETS["tiny_stage2"], vae_steps: int = 1500,
                 pretrained: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Train the tiny generator's VAE, stage 1 and stage 2 under ``out_dir``; returns the final generator folder.

    With ``pretrained`` (a saved stage-1 generator, e.g. the committed weights) the VAE and stage 1 are
    taken from it and only stage 2 runs. ``stage1=None`` skips stage 1 (the from-scratch ablation).
    """
    from .autoencoder import reconstruction_psnr, train_vae
    from .sizes import tiny_generator

    out_dir = Path(out_dir)
    if pretrained:  # read only: never trained into or replaced
        start_from = saved_generator(PROJECT_ROOT / pretrained)
    else:
        start_from = out_dir / ("stage1/generator" if stage1 is not None else "scratch")
    final = out_dir / "stage2" / "generator" if stage2 is not None else start_from
    if is_saved_generator(final):
        return final  # nothing to train: skip loading images and encoders
    timings_path = out_dir / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    preview = training_preview(world)
    if not is_saved_generator(start_from):
        images = load_images(world.subset("train", "fashion"), world.root)
        vae = train_vae(images, out_dir / "vae", steps=vae_steps, progress=progress)
        timings["vae_psnr_db"] = round(reconstruction_psnr(vae, images[:512]), 2)
        generator = tiny_generator(vae, image_size=(world.config.height, world.config.width))
        if stage1 is not None:
            _timed_training(timings, "stage1", generator, pair_data(generator, world, "fashion"), out_dir / "stage1",
                            stage1, progress, preview)
        else:
            generator.save_pretrained(start_from)
    if stage2 is not None:
        generator = PoseDiveGenerator.from_pretrained(start_from)
        _timed_training(timings, "stage2", generator, pair_data(generator, world, "train"), out_dir / "stage2",
                        stage2, progress, preview)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings_path.write_text(json.dumps(timings, indent=1))
    return final


def _timed_training(timings: dict, stage: str, generator: PoseDiveGenerator, data: PairData, out_dir: Path,
                    config: GeneratorTrainConfig, progress: bool, preview: TrainingPreview | None) -> None:
    """Run :func:`train_generator`; ``timings[<stage>_seconds]`` is its time without the preview sampling,
    which goes to ``timings[<stage>_preview_seconds]``."""
    sampled = preview.seconds if preview is not None else 0.0
    start = time.perf_counter()
    train_generator(generator, data, out_dir, config, progress, preview=preview)
    previews = preview.seconds - sampled if preview is not None else 0.0
    timings[f"{stage}_seconds"] = round(time.perf_counter() - start - previews, 1)
    if preview is not None:
        timings[f"{stage}_preview_seconds"] = round(previews, 1)


def training_preview(world: SyntheticWorld, n_ids: int = 6, every: int = 100, seed: int = 0) -> TrainingPreview | None:
    """The probes sampled during training (:mod:`.previews`): one oracle condition for each of ``n_ids`` train
    identities, with a train image of the identity as reference and the oracle render as the truth (None for a
    world without oracle renders of two identities)."""
    from .identity import identity_probe

    available = _oracle_identities(world)
    if available < 2:
        return None
    probe = identity_probe(world, n_ids=min(n_ids, available), per_id=1, seed=seed)
    return TrainingPreview(probe.references, probe.conditions, probe.same, every=every, seed=seed)


def _oracle_identities(world: SyntheticWorld) -> int:
    """How many identities the world has oracle renders of (training previews need two)."""
    return world.subset("oracle")["pid"].nunique()


def save_training_previews(run_dir: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """``training_previews_<stage>.png`` in ``out_dir`` for each stage of ``run_dir`` that recorded previews."""
    from ..analysis.generator_figures import plot_training_previews
    from ..analysis.world_figures import save_figure
    from .previews import load_previews

    saved = []
    for stage in ("stage1", "stage2"):
        previews = load_previews(Path(run_dir) / stage / "previews")
        path = Path(out_dir) / f"training_previews_{stage}.png"
        if previews is None:
            path.unlink(missing_ok=True)  # an earlier run's figure in a reused output folder would mislead
            continue
        save_figure(plot_training_previews(*previews, title=f"{stage.replace('stage', 'stage ')}: samples during training"), path)
        saved.append(path)
    return saved


def missing_previews_reason(world: SyntheticWorld, run_dir: str | os.PathLike) -> str:
    """Why a run shows no samples during training, and what to do about it."""
    if _oracle_identities(world) < 2:
        return "no training previews: this world has no oracle renders of two identities to sample"
    return (f"no training previews: the generator in {run_dir} was trained before they were recorded "
            "(delete that folder to train it again with them)")


def identity_check(generator_dir: str | os.PathLike, world: SyntheticWorld, judge_dir: str | os.PathLike,
                   n_ids: int = 20, per_id: int = 4, steps: int = 20, guidance_scale: float = 3.5, seed: int = 0,
                   judge_iterations: int | None = None, progress: bool = True) -> tuple[dict, dict]:
    """Identity scores of a saved generator on oracle conditions, and the tensors for a qualitative grid.

    The judge is the tiny Re-ID preset trained on the world's train split plus its oracle renders (it
    has seen every identity in diverse poses and viewpoints), cached in ``judge_dir``.
    """
    from ..reid.train import PRESETS as REID_PRESETS
    from ..reid.train import load_reid_model, train_reid
    from .identity import identity_probe, identity_scores
    from .pipeline import PoseDivePipeline

    judge_rows = world.subset("train", "oracle")
    config = REID_PRESETS["tiny"]
    config = replace(config, seed=seed, P=min(config.P, judge_rows["pid"].nunique()),
                     iterations=judge_iterations or config.iterations)
    judge_dir = Path(judge_dir) / config_key(config, length=8)
    train_reid(judge_rows, world.root, judge_dir, config, progress=progress)
    probe = identity_probe(world, n_ids, per_id, seed)
    # the samples are cached with the judge, named by the generator's weights and the probe settings
    settings = {"generator": weights_digest(generator_dir), "n_ids": n_ids, "per_id": per_id, "steps": steps,
                "guidance_scale": guidance_scale, "seed": seed}
    cached = judge_dir / "identity_checks" / f"{config_key(config, extra=settings, length=12)}.npz"
    if cached.is_file():
        with np.load(cached) as stored:
            return json.loads(str(stored["scores"])), {"probe": probe, "generated": torch.from_numpy(stored["generated"])}
    generator = PoseDiveGenerator.from_pretrained(generator_dir).eval()
    start = time.perf_counter()
    generated = PoseDivePipeline(generator)(probe.references, probe.conditions, steps, guidance_scale, seed, progress=progress)
    seconds = time.perf_counter() - start
    generated = to_uint8(generated)
    scores = identity_scores(load_reid_model(judge_dir), probe, generated)
    scores.update(steps=steps, guidance_scale=guidance_scale, seed=seed, sample_seconds=round(seconds, 1))
    cached.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(cached) as tmp:
        np.savez(tmp, generated=generated.numpy(), scores=np.array(json.dumps(scores)))
    return scores, {"probe": probe, "generated": generated}


def profile_identity_check(generator_dir: str | os.PathLike, world: SyntheticWorld, profile: str, seed: int = 0,
                           progress: bool = True) -> tuple[dict, dict]:
    """:func:`identity_check` with the probe size of ``profile`` and its cached judge."""
    smoke = profile == "smoke"
    judge_dir = cache_dir() / "runs" / f"judge-{profile}-{world.config.key()}-seed{seed}"
    return identity_check(generator_dir, world, judge_dir, n_ids=4 if smoke else 20, seed=seed, steps=5 if smoke else 20,
                          judge_iterations=20 if smoke else None, progress=progress)


def generator_experiment(profile: str, out_dir: str | os.PathLike, stage1_steps: int | None = None,
                         stage2_steps: int | None = None, pretrained: str | os.PathLike | None = None,
                         vae_steps: int = 1500, seed: int = 0, progress: bool = True) -> dict:
    """Train (cached) and judge the tiny generator on the world of ``profile``; figures go to ``out_dir``.

    Returns ``{"generator": folder, "run_dir": folder, "details": scores and settings, "shown": grid tensors,
    "preview_figures": the figures of samples during training, "preview_note": why there are none, or None}``.
    """
    import pandas as pd

    from ..analysis.generator_figures import plot_loss_curves
    from ..analysis.world_figures import save_figure
    from ..data.synthetic.world import build_world

    world = build_world(profile, progress=progress)
    final, run_dir = trained_generator(world, profile, stage1_steps, stage2_steps, pretrained, vae_steps, seed, progress)
    scores, shown = profile_identity_check(final, world, profile, seed, progress)
    out_dir = Path(out_dir)
    save_identity_grid(scores, shown, out_dir / "identity_grid.png")

    stage1_log = stage1_loss_log(PROJECT_ROOT / pretrained) if pretrained else run_dir / "stage1" / "loss.csv"
    logs = {name: pd.read_csv(path).drop_duplicates("step", keep="last")
            for name, path in (("stage1", stage1_log), ("stage2", run_dir / "stage2" / "loss.csv")) if path and path.is_file()}
    if logs:
        save_figure(plot_loss_curves(logs), out_dir / "loss_curves.png")
    preview_figures = save_training_previews(run_dir, out_dir)
    timings = run_dir / "timings.json"
    steps = {f"{name}_steps": json.loads((run_dir / name / "train_config.json").read_text())["steps"]
             for name in ("stage1", "stage2") if (run_dir / name / "train_config.json").is_file()}
    details = {**scores, "profile": profile, **steps, "pretrained": str(pretrained) if pretrained else None,
               "training": json.loads(timings.read_text()) if timings.is_file() else {},
               "target": "rank1_generated >= 0.5 and closer_generated >= 0.8"}
    (out_dir / "identity.json").write_text(json.dumps(details, indent=1))
    return {"generator": final, "run_dir": run_dir, "details": details, "shown": shown, "preview_figures": preview_figures,
            "preview_note": None if preview_figures else missing_previews_reason(world, run_dir)}


def save_identity_grid(scores: dict, shown: dict, path: str | os.PathLike) -> None:
    """The grid of an identity check (reference, condition maps, generated, oracle render), its rank-1 as title."""
    from ..analysis.generator_figures import plot_generation_grid
    from ..analysis.world_figures import save_figure

    probe = shown["probe"]
    title = f"rank-1 {scores['rank1_generated']:.0%} (reference {scores['rank1_reference']:.0%})"
    save_figure(plot_generation_grid(probe.references, probe.conditions, shown["generated"], probe.same, rows=10,
                                     title=title), path)


def scratch_start(pretrained: str | os.PathLike, folder: str | os.PathLike, image_size: tuple[int, int]) -> Path:
    """The from-scratch start of the paper's Table 8a: the pretrained generator's (frozen) VAE with freshly
    initialised U-Nets, pose guider and CLIP, saved to ``folder``."""
    from .sizes import tiny_generator

    folder = Path(folder)
    if not is_saved_generator(folder):
        vae = PoseDiveGenerator.from_pretrained(PROJECT_ROOT / pretrained).vae.float()
        tiny_generator(vae, image_size=image_size).save_pretrained(folder)
    return folder


def continued_stage1(world: SyntheticWorld, profile: str, extra_steps: int, pretrained: str | os.PathLike,
                     seed: int = 0, progress: bool = True) -> Path:
    """Stage 1 continued for ``extra_steps`` more steps on the fashion set from the saved stage-1 generator
    ``pretrained`` (the profile's stage-1 preset, a fresh optimiser and EMA); trained once, then cached.
    Returns the continued generator's folder, a ``pretrained`` start for :func:`trained_generator`; its
    ``loss.csv`` is the whole stage-1 history (the start's, then this run's)."""
    if extra_steps < 1:
        raise ValueError(f"extra_steps must be at least 1, got {extra_steps}")
    stage1, _ = stage_configs(profile, seed, stage1_steps=extra_steps)
    key = config_key(stage1, extra=["continued", weights_digest(saved_generator(PROJECT_ROOT / pretrained))], length=8)
    out_dir = cache_dir() / "generator" / f"stage1-{profile}-{world.config.key()}-{key}"
    final = out_dir / "generator"
    if not is_saved_generator(final):
        generator = PoseDiveGenerator.from_pretrained(PROJECT_ROOT / pretrained)
        train_generator(generator, pair_data(generator, world, "fashion"), out_dir, stage1, progress)
    if not (final / "loss.csv").is_file():
        _write_stage1_history(stage1_loss_log(PROJECT_ROOT / pretrained), out_dir / "loss.csv", final / "loss.csv")
    return final


def continued_stages(world: SyntheticWorld, profile: str, extra_steps: list[int], pretrained: str | os.PathLike,
                     seed: int = 0, progress: bool = True) -> dict[int, Path | str]:
    """``{n: generator folder}`` for each of ``extra_steps``: ``pretrained`` continued by ``n`` stage-1 steps
    (0 = ``pretrained`` itself), each length continuing the previous one."""
    if not extra_steps or min(extra_steps) < 0:
        raise ValueError(f"extra_steps must be step counts >= 0, got {extra_steps}")
    starts, start, done = {}, pretrained, 0
    for steps in sorted(set(extra_steps)):
        if steps > done:
            start, done = continued_stage1(world, profile, steps - done, start, seed, progress), steps
        starts[steps] = start
    return starts


def stage1_loss_log(generator_dir: str | os.PathLike) -> Path | None:
    """The stage-1 loss log of a saved generator: its own ``loss.csv`` (committed or continued weights), else
    the training run's next to it; None if neither exists."""
    generator_dir = Path(generator_dir)
    found = [p for p in (generator_dir / "loss.csv", generator_dir.parent / "loss.csv") if p.is_file()]
    return found[0] if found else None


def _write_stage1_history(before: Path | None, continuation: Path, target: Path) -> None:
    import pandas as pd

    logs = [pd.read_csv(p).drop_duplicates("step", keep="last") for p in (before, continuation) if p and p.is_file()]
    if len(logs) == 2:
        logs[1] = logs[1].assign(step=logs[1]["step"] + logs[0]["step"].max())
    if logs:
        with atomic_output(target) as tmp:
            pd.concat(logs).to_csv(tmp, index=False)


def stage_configs(profile: str, seed: int = 0, stage1_steps: int | None = None,
                  stage2_steps: int | None = None) -> tuple[GeneratorTrainConfig, GeneratorTrainConfig]:
    """Stage-1 and stage-2 training configs of ``profile``; steps default to the preset (stage 1) and to the
    profile's ``generator_stage2_steps`` (stage 2)."""
    settings = profile_settings(profile)
    smoke = profile == "smoke"
    stage1, stage2 = (PRESETS["smoke"], PRESETS["smoke"]) if smoke else (PRESETS["tiny_stage1"], PRESETS["tiny_stage2"])
    stage1 = replace(stage1, seed=seed, steps=stage1.steps if stage1_steps is None else stage1_steps)
    stage2_steps = settings.generator_stage2_steps if stage2_steps is None else stage2_steps
    return stage1, replace(stage2, seed=seed, steps=stage2_steps)


def trained_generator(world: SyntheticWorld, profile: str, stage1_steps: int | None = None, stage2_steps: int | None = None,
                      pretrained: str | os.PathLike | None = None, vae_steps: int = 1500, seed: int = 0,
                      progress: bool = True, from_scratch: bool = False) -> tuple[Path, Path]:
    """The tiny generator of ``profile`` (trained once, then cached): ``(generator folder, run folder)``;
    ``None`` steps take :func:`stage_configs`' defaults.

    ``from_scratch``: stage 2 starts from random U-Nets, guider and CLIP (the ablation of the paper's
    Table 8a), with the VAE of ``pretrained`` when given (else a VAE trained here, without stage 1).
    """
    stage1, stage2 = stage_configs(profile, seed, stage1_steps, stage2_steps)
    vae_steps = min(vae_steps, 5) if profile == "smoke" else vae_steps
    # a pretrained start is named by its contents, so re-exported weights never reuse an old stage 2
    start = (["pretrained", weights_digest(saved_generator(PROJECT_ROOT / pretrained))] if pretrained
             else [config_key(stage1), vae_steps])
    key = config_key(stage2, extra=start + ["scratch"] if from_scratch else start, length=8)
    run_dir = cache_dir() / "generator" / f"{profile}-{world.config.key()}-{key}"
    if from_scratch and not pretrained:
        stage1 = None
    elif from_scratch:
        pretrained = scratch_start(pretrained, run_dir / "scratch", (world.config.height, world.config.width))
    final = train_stages(world, run_dir, None if pretrained else stage1, stage2, vae_steps, pretrained, progress)
    return final, run_dir
