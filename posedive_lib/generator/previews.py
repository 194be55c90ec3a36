"""Sample grids during generator training: the same few probes sampled every ``every`` steps.

A :class:`TrainingPreview` holds fixed references and target condition maps (and, on the synthetic
world, the oracle render of each probe). When a run starts, :meth:`TrainingPreview.start` empties the
run's ``previews`` folder and writes ``probe.npz``; the trainer then calls :meth:`TrainingPreview.record`
at step 0, every ``every`` steps and at the last step, with the weights the saved generator will hold (the
EMA weights, or the raw ones when training keeps no EMA); each record is one ``step_<step>.npy`` of uint8
images. Sampling draws its own seeded noise and leaves the training state alone, so a run with previews
trains exactly the weights of a run without them.
"""
from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..paths import atomic_output
from .data import conditions_to_uint8, to_uint8

PREVIEW_FILE = re.compile(r"step_(\d+)\.npy")


@dataclass
class TrainingPreview:
    references: torch.Tensor  # (N, 3, H, W) in [-1, 1]
    conditions: torch.Tensor  # (N, 7, H, W) in [0, 1]
    oracle: torch.Tensor | None = None  # (N, 3, H, W) uint8: what a perfect generator would draw
    every: int = 100
    sampling_steps: int = 10  # DDIM steps of each preview sample
    guidance_scale: float = 3.5
    seed: int = 0
    seconds: float = 0.0  # time spent sampling so far (kept out of the training time)

    def __post_init__(self):
        if len(self.references) != len(self.conditions) or len(self.references) == 0:
            raise ValueError(f"a training preview needs one condition per reference, got {len(self.references)} "
                             f"references and {len(self.conditions)} conditions")
        if self.every < 1 or self.sampling_steps < 1:
            raise ValueError(f"preview every and sampling_steps must be at least 1, got {self.every} and "
                             f"{self.sampling_steps}")

    def due(self, step: int, last: int) -> bool:
        """Whether training step ``step`` (0 = before the first) of ``last`` gets a preview."""
        return step % self.every == 0 or step == last

    def start(self, folder: str | os.PathLike) -> None:
        """Begin a run's previews: remove what an earlier run left in ``folder`` and save the probes."""
        folder = Path(folder)
        shutil.rmtree(folder, ignore_errors=True)
        arrays = {"references": to_uint8(self.references).numpy(),
                  "conditions": conditions_to_uint8(self.conditions).numpy()}
        if self.oracle is not None:
            arrays["oracle"] = self.oracle.numpy()
        with atomic_output(folder / "probe.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @torch.no_grad()
    def record(self, generator, step: int, folder: str | os.PathLike) -> Path:
        """Sample the probes with ``generator`` as it is now and save them as ``folder/step_<step>.npy``."""
        from .pipeline import PoseDivePipeline

        started = time.perf_counter()
        modes = [(module, module.training) for module in generator.modules()]
        generator.eval()
        try:
            images = PoseDivePipeline(generator)(self.references, self.conditions, self.sampling_steps, self.guidance_scale,
                                                 self.seed, batch_size=len(self.references))
        finally:
            for module, training in modes:
                module.training = training
        path = Path(folder) / f"step_{step:06d}.npy"
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, to_uint8(images).numpy())
        self.seconds += time.perf_counter() - started
        return path


def load_previews(folder: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[int, np.ndarray]] | None:
    """``(probe arrays, {step: uint8 images (N, 3, H, W)})`` of a run's ``previews`` folder, or None if it
    has none (a generator trained before previews were recorded)."""
    folder = Path(folder)
    if not (folder / "probe.npz").is_file():
        return None
    with np.load(folder / "probe.npz") as stored:
        probe = {name: stored[name] for name in stored.files}
    samples = {int(m.group(1)): np.load(p) for p in sorted(folder.iterdir()) if (m := PREVIEW_FILE.fullmatch(p.name))}
    return (probe, dict(sorted(samples.items()))) if samples else None
