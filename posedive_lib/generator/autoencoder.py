"""A small VAE for the tiny generator, trained here on synthetic images (no pretrained VAE exists offline).

Loss: L1 reconstruction + a small KL term. After training, ``scaling_factor`` is set so scaled latents
have unit standard deviation on the training images (what SD's 0.18215 does for its VAE).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from .data import stream_seed
from .sizes import tiny_vae


def train_vae(images: torch.Tensor, out_dir: str | os.PathLike, steps: int = 1500, batch: int = 16, lr: float = 1e-3,
              kl_weight: float = 1e-6, crop: int | None = 64, seed: int = 0, progress: bool = True) -> AutoencoderKL:
    """Train a tiny VAE on ``images`` (N, 3, H, W) in [-1, 1]; saved to ``out_dir`` (reused if already there).

    The VAE is fully convolutional, so it trains on random ``crop`` x ``crop`` windows (None: whole images).
    """
    from tqdm.auto import tqdm

    from ..paths import atomic_output

    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file():
        return AutoencoderKL.from_pretrained(out_dir)
    if images.ndim != 4 or images.shape[1] != 3 or len(images) < 2:
        raise ValueError(f"train_vae needs at least two images (N, 3, H, W), got {tuple(images.shape)}")
    torch.manual_seed(seed)
    vae = tiny_vae(tuple(images.shape[2:]))
    optimizer = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.05)
    bar = tqdm(range(steps), desc="VAE training", disable=not progress)
    for step in bar:
        rng = torch.Generator().manual_seed(stream_seed(seed, step))
        x = images[torch.randint(len(images), (batch,), generator=rng)]
        if crop and crop < min(x.shape[2:]):
            top, left = (int(torch.randint(d - crop + 1, (1,), generator=rng)) for d in x.shape[2:])
            x = x[:, :, top:top + crop, left:left + crop]
        posterior = vae.encode(x).latent_dist
        reconstruction = vae.decode(posterior.sample(generator=rng)).sample
        loss = F.l1_loss(reconstruction, x) + kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    vae.eval()
    with torch.no_grad():
        latents = torch.cat([vae.encode(images[i:i + 256]).latent_dist.mode() for i in range(0, len(images), 256)])
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    with atomic_output(out_dir) as tmp:
        vae.save_pretrained(tmp)
    return vae


@torch.no_grad()
def reconstruction_psnr(vae: AutoencoderKL, images: torch.Tensor) -> float:
    """Mean PSNR (dB) of VAE reconstructions (posterior mean) of images in [-1, 1]."""
    vae.eval()
    values = []
    for i in range(0, len(images), 256):
        x = images[i:i + 256]
        y = vae.decode(vae.encode(x).latent_dist.mode()).sample.clamp(-1, 1)
        mse = ((y - x) / 2).pow(2).mean(dim=(1, 2, 3))
        values.append(-10 * torch.log10(mse.clamp(min=1e-10)))
    return float(torch.cat(values).mean())
