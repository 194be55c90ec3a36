"""Generator training (stage 1 on a diverse set, stage 2 on a Re-ID train split) with ``accelerate``.

The objective is the anchors': v-prediction (or epsilon) on a zero-terminal-SNR schedule with min-SNR
weighting, noise offset, and the reference dropped for ``drop_reference`` of the samples (zero CLIP
embedding, no reference tokens) so sampling can use classifier-free guidance. Training runs in
segments; after each one the full state (trainable weights, optimizer, EMA) is saved, so a killed run
resumes and continues exactly. The final (EMA) weights are saved as a complete generator folder.
With a :class:`~.previews.TrainingPreview`, fixed probes are sampled along the way (``previews/``).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from ..checkpointing import resume_precision, save_training_state, saved_step, trim_log
from .data import PairData, stream_seed
from .model import PoseDiveGenerator, is_saved_generator
from .previews import TrainingPreview


@dataclass(frozen=True)
class GeneratorTrainConfig:
    steps: int = 1000
    batch: int = 16
    lr: float = 1e-5  # the paper's; a from-scratch tiny model needs more (see PRESETS)
    weight_decay: float = 0.01
    warmup: int = 0
    drop_reference: float = 0.1
    noise_offset: float = 0.05
    snr_gamma: float | None = 5.0
    ema_decay: float | None = 0.999
    checkpoint_every: int = 250
    seed: int = 0
    mixed_precision: str = "auto"  # bf16 on a GPU (fp16 on one that would emulate bf16), none on CPU

    def __post_init__(self):
        if min(self.steps, self.batch, self.checkpoint_every) < 1:
            raise ValueError("steps, batch and checkpoint_every must be at least 1")
        if not 0 <= self.drop_reference < 1:
            raise ValueError(f"drop_reference must lie in [0, 1), got {self.drop_reference}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if min(self.weight_decay, self.warmup, self.noise_offset) < 0:
            raise ValueError("weight_decay, warmup and noise_offset must not be negative")
        if self.snr_gamma is not None and self.snr_gamma <= 0:
            raise ValueError(f"snr_gamma (min-SNR weighting) must be positive or None, got {self.snr_gamma}")
        if self.mixed_precision not in ("auto", "no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be auto, no, fp16 or bf16, got {self.mixed_precision!r}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in (0, 1) or be None, got {self.ema_decay}")


PRESETS = {
    "paper": GeneratorTrainConfig(),
    "tiny_stage1": GeneratorTrainConfig(steps=2000, batch=16, lr=3e-4, warmup=100, ema_decay=0.995),
    "tiny_stage2": GeneratorTrainConfig(steps=400, batch=16, lr=1e-4, warmup=50, ema_decay=0.99),
    "smoke": GeneratorTrainConfig(steps=4, batch=4, lr=1e-3, checkpoint_every=2, ema_decay=None),
}


def diffusion_loss(generator: PoseDiveGenerator, batch: dict, config: GeneratorTrainConfig, rng: torch.Generator) -> torch.Tensor:
    """One batch's weighted denoising loss (noise and timesteps drawn from ``rng``)."""
    from diffusers.training_utils import compute_snr

    scheduler = generator.scheduler
    latents = batch["target_latents"]
    device = latents.device
    noise = torch.randn(latents.shape, generator=rng).to(device)
    if config.noise_offset:
        noise += config.noise_offset * torch.randn((*latents.shape[:2], 1, 1), generator=rng).to(device)
    timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(latents),), generator=rng).to(device)
    keep = (torch.rand(len(latents), generator=rng) >= config.drop_reference).to(device)
    noisy = scheduler.add_noise(latents, noise, timesteps)
    v_prediction = scheduler.config.prediction_type == "v_prediction"
    target = scheduler.get_velocity(latents, noise, timesteps) if v_prediction else noise
    generator.write_reference(batch["reference_latents"], batch["embeddings"])
    prediction = generator.denoise(noisy, timesteps, batch["embeddings"], batch["conditions"], keep=keep)
    per_sample = F.mse_loss(prediction.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if config.snr_gamma:
        snr = compute_snr(scheduler, timesteps)
        weight = torch.clamp(snr, max=config.snr_gamma) / (snr + 1 if v_prediction else snr.clamp(min=1e-8))
        per_sample = per_sample * weight
    return per_sample.mean()


def prepare_training(generator: PoseDiveGenerator, config: GeneratorTrainConfig, mixed_precision: str | None = None):
    """An ``Accelerator`` in ``mixed_precision`` (default ``config.mixed_precision``; "auto": bf16 on a GPU that has
    it natively, fp16 on an older one, none on a CPU), the trainable parts, AdamW and the warm-up LR schedule, prepared
    and on the accelerator's device; returns ``(accelerator, trainable, optimizer, lr_schedule)``."""
    from ..accelerators import make_accelerator

    accelerator = make_accelerator(mixed_precision or config.mixed_precision, gpu_default="bf16")
    if accelerator.num_processes > 1:
        raise NotImplementedError("generator training runs in one process for now (batches are not sharded): "
                                  "launch it without `accelerate launch --num_processes`")
    trainable = generator.trainable
    optimizer = torch.optim.AdamW(trainable.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / config.warmup) if config.warmup else 1.0)
    trainable, optimizer, schedule = accelerator.prepare(trainable, optimizer, schedule)
    generator.to(accelerator.device)
    return accelerator, trainable, optimizer, schedule


def training_step(generator: PoseDiveGenerator, batch: dict, config: GeneratorTrainConfig, rng: torch.Generator,
                  accelerator, trainable, optimizer, schedule) -> float:
    """One optimisation step on ``batch`` (autocast loss, backward, gradient clipping at 1, AdamW and LR steps); returns the loss."""
    with accelerator.autocast():
        loss = diffusion_loss(generator, batch, config, rng)
    optimizer.zero_grad(set_to_none=True)
    accelerator.backward(loss)
    accelerator.clip_grad_norm_(trainable.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    return loss.item()


def train_generator(generator: PoseDiveGenerator, data: PairData, out_dir: str | os.PathLike,
                    config: GeneratorTrainConfig = GeneratorTrainConfig(), progress: bool = True,
                    stop_after: int | None = None, preview: TrainingPreview | None = None) -> Path:
    """Train ``generator`` on ``data``; returns ``out_dir / "generator"`` (the saved, EMA-weighted generator).

    A finished run is reused as is; a partial one resumes from its last segment. ``stop_after`` ends
    the run after that many steps (at a segment boundary), as an interruption would. ``preview`` samples
    its probes with the weights the saved generator will hold (EMA, or raw without EMA) at step 0, every
    ``preview.every`` steps and at the end, into ``out_dir / "previews"``; it does not change what is trained.
    """
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    final = out_dir / "generator"
    if is_saved_generator(final):
        return final
    state_dir = out_dir / "checkpoint"
    accelerator, trainable, optimizer, scheduler = prepare_training(
        generator, config, resume_precision(state_dir, config.mixed_precision))
    ema = EMAModel(trainable.parameters(), decay=config.ema_decay) if config.ema_decay else None
    step = saved_step(state_dir) or 0
    if step:
        accelerator.load_state(str(state_dir))
        if ema is not None:
            ema.load_state_dict(torch.load(state_dir / "ema.pt", weights_only=False))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train_config.json").write_text(json.dumps(asdict(config), indent=1))
    log_path = out_dir / "loss.csv"
    if accelerator.is_main_process:
        trim_log(log_path, step)
    bar = tqdm(total=config.steps, initial=step, desc="generator training", unit="step",
               disable=not progress or not accelerator.is_main_process)
    end = min(config.steps, stop_after) if stop_after else config.steps
    trainable.train()
    previews_dir = out_dir / "previews"
    if preview is not None and step == 0 and accelerator.is_main_process:
        preview.start(previews_dir)
        _record_preview(preview, generator, trainable, ema, step, previews_dir)
    while step < end:
        records = []
        for _ in range(min(config.checkpoint_every, end - step)):
            rng = torch.Generator().manual_seed(stream_seed(config.seed, step, 1))
            batch = {k: v.to(accelerator.device) for k, v in data.batch(config.batch, config.seed, step).items()}
            loss = training_step(generator, batch, config, rng, accelerator, trainable, optimizer, scheduler)
            if ema is not None:
                ema.step(trainable.parameters())
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4f}")
            records.append({"step": step, "loss": loss, "lr": scheduler.get_last_lr()[0]})
            if preview is not None and preview.due(step, config.steps) and accelerator.is_main_process:
                _record_preview(preview, generator, trainable, ema, step, previews_dir)
        if accelerator.is_main_process:
            pd.DataFrame(records).to_csv(log_path, mode="a", header=not log_path.exists(), index=False)
        save_training_state(accelerator, state_dir, step, {"ema.pt": ema.state_dict()} if ema is not None else None)
    bar.close()
    if step >= config.steps and accelerator.is_main_process:
        if ema is not None:
            ema.copy_to(trainable.parameters())
        generator.eval().to("cpu").save_pretrained(final)
        shutil.rmtree(state_dir, ignore_errors=True)
    return final


def _record_preview(preview: TrainingPreview, generator: PoseDiveGenerator, trainable, ema, step: int, folder: Path) -> None:
    """Sample the preview with the weights the saved generator will hold (EMA, if kept), then put the training weights back."""
    if ema is not None:
        ema.store(trainable.parameters())
        ema.copy_to(trainable.parameters())
    try:
        preview.record(generator, step, folder)
    finally:
        if ema is not None:
            ema.restore(trainable.parameters())
