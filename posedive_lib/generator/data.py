"""Training pairs for the generator: (reference image, target latent, target condition maps) of one identity.

Latents and CLIP embeddings come from frozen encoders, so they are computed once per image. A batch
is a pure function of ``(seed, step)``: a resumed run draws exactly the batches it would have drawn.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..data.synthetic.world_conditions import CONDITION_CHANNELS


def stream_seed(*keys: int) -> int:
    """A well-mixed 63-bit seed from integers (the same on every machine and Python run)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def load_images(frame: pd.DataFrame, root: str | os.PathLike, size: tuple[int, int] | None = None) -> torch.Tensor:
    """(N, 3, H, W) images in [-1, 1] for the manifest rows (resized to ``size`` = (H, W) if given)."""
    from ..data.images import read_rgb_stack

    images = torch.from_numpy(read_rgb_stack(frame["path"], root, size, resample="bicubic"))
    return images.permute(0, 3, 1, 2).float() / 127.5 - 1


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> uint8 in [0, 255] (same layout)."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def conditions_to_uint8(conditions: torch.Tensor) -> torch.Tensor:
    """Condition maps in [0, 1] -> uint8 in [0, 255] (same layout)."""
    return (conditions.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8)


def stack_conditions(maps: dict[str, np.ndarray]) -> torch.Tensor:
    """``{"depth", "normal", "skeleton"}`` uint8 arrays -> (N, 7, H, W) uint8 tensor in guider order."""
    parts = []
    for name in CONDITION_CHANNELS:
        array = maps[name]
        parts.append(torch.from_numpy(array[:, None] if array.ndim == 3 else np.moveaxis(array, -1, 1)))
    return torch.cat(parts, dim=1)


@dataclass
class PairData:
    """Per image: pid, scaled VAE latent, CLIP embedding and condition maps (uint8)."""

    pids: torch.Tensor  # (N,)
    latents: torch.Tensor  # (N, C, h, w)
    embeddings: torch.Tensor  # (N, 1, D)
    conditions: torch.Tensor  # (N, 7, H, W) uint8

    def __post_init__(self):
        sizes = {len(self.pids), len(self.latents), len(self.embeddings), len(self.conditions)}
        if len(sizes) != 1:
            raise ValueError(f"pair data arrays disagree in length: {sizes}")
        counts = torch.bincount(torch.unique(self.pids, return_inverse=True)[1])
        if len(self.pids) == 0 or int(counts.max()) < 2:
            raise ValueError("training pairs need at least one identity with two images")
        self._by_pid = {int(p): torch.nonzero(self.pids == p).flatten() for p in torch.unique(self.pids)}
        self._targets = torch.cat([rows for rows in self._by_pid.values() if len(rows) > 1]).sort().values

    @classmethod
    def from_images(cls, generator, pids, images: torch.Tensor, conditions: torch.Tensor, batch: int = 64) -> "PairData":
        """Encode ``images`` (N, 3, H, W), in [-1, 1] or uint8, in batches on the generator's device (kept on the CPU)."""
        device = next(generator.vae.parameters()).device
        latents, embeddings = [], []
        for start in range(0, len(images), batch):
            chunk = images[start:start + batch].to(device)
            if chunk.dtype == torch.uint8:
                chunk = chunk.float() / 127.5 - 1
            latents.append(generator.encode_images(chunk).cpu())
            embeddings.append(generator.embed_images(chunk).cpu())
        return cls(torch.tensor(np.asarray(pids)), torch.cat(latents), torch.cat(embeddings), conditions)

    def batch(self, size: int, seed: int, step: int) -> dict[str, torch.Tensor]:
        """Targets drawn uniformly among images whose identity has another image; references from the rest."""
        rng = torch.Generator().manual_seed(stream_seed(seed, step, 0))
        targets = self._targets[torch.randint(len(self._targets), (size,), generator=rng)]
        references = []
        for t in targets.tolist():
            rows = self._by_pid[int(self.pids[t])]
            others = rows[rows != t]
            references.append(int(others[torch.randint(len(others), (1,), generator=rng)]))
        references = torch.tensor(references)
        return {"target_latents": self.latents[targets], "reference_latents": self.latents[references],
                "embeddings": self.embeddings[references], "conditions": self.conditions[targets].float() / 255,
                "targets": targets, "references": references}
