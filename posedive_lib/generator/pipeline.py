"""Sampling: reference image + target condition maps -> new image of the same person (DDIM, CFG).

The reference U-Net runs once per reference image and its attention features are reused at every
denoising step (``reuse_reference=False`` recomputes them each step, for the benchmark and the test
that the two agree); the pose guider's features of the condition maps are likewise computed once.
Classifier-free guidance runs the conditional and unconditional branches in one
batch: the unconditional half has a zero CLIP embedding and no reference tokens.
"""
from __future__ import annotations

from typing import Sequence

import torch
from diffusers import DDIMScheduler

from .model import PoseDiveGenerator


class PoseDivePipeline:
    def __init__(self, generator: PoseDiveGenerator):
        self.generator = generator
        self.scheduler = DDIMScheduler.from_config(generator.scheduler.config)

    @torch.no_grad()
    def __call__(self, references: torch.Tensor, conditions: torch.Tensor, num_inference_steps: int = 20,
                 guidance_scale: float = 3.5, seed: int = 0, batch_size: int = 16, reuse_reference: bool = True,
                 progress: bool = False, seeds: Sequence[int] | None = None) -> torch.Tensor:
        """References (B, 3, H, W) in [-1, 1] and condition maps (B, 7, H, W) in [0, 1] -> images (B, 3, H, W) in [-1, 1].

        Sample ``b`` starts from noise seeded by ``seeds[b]`` (default: derived from ``(seed, b)``), so
        results do not depend on ``batch_size``.
        """
        g = self.generator
        g.check_images(references, "reference images")
        if conditions.shape[0] != references.shape[0] or tuple(conditions.shape[2:]) != g.image_size:
            raise ValueError(f"need one (7, {g.image_size[0]}, {g.image_size[1]}) condition per reference, "
                             f"got {tuple(conditions.shape)} for {len(references)} references")
        if num_inference_steps < 1 or guidance_scale < 0:
            raise ValueError("num_inference_steps must be >= 1 and guidance_scale >= 0")
        if seeds is None:
            seeds = [seed * 1_000_003 + b for b in range(len(references))]
        elif len(seeds) != len(references):
            raise ValueError(f"{len(seeds)} seeds for {len(references)} references: give one seed per sample")
        from tqdm.auto import tqdm

        out = []
        for start in tqdm(range(0, len(references), batch_size), desc="sampling", disable=not progress):
            stop = min(start + batch_size, len(references))
            out.append(self._sample(references[start:stop], conditions[start:stop], seeds[start:stop],
                                    num_inference_steps, guidance_scale, reuse_reference))
        return torch.cat(out)

    def _sample(self, references, conditions, seeds, steps, guidance, reuse_reference) -> torch.Tensor:
        g = self.generator
        device = next(g.denoising_unet.parameters()).device
        dtype = next(g.denoising_unet.parameters()).dtype
        references, conditions = references.to(device, dtype), conditions.to(device, dtype)
        n = len(references)
        reference_latents = g.encode_images(references).to(dtype)
        embeddings = g.embed_images(references).to(dtype)
        noise = [torch.randn((1, *reference_latents.shape[1:]), generator=torch.Generator().manual_seed(int(s)))
                 for s in seeds]
        latents = torch.cat(noise).to(device, dtype) * self.scheduler.init_noise_sigma
        use_cfg = guidance != 1.0
        index = torch.arange(n, device=device)
        keep = torch.ones(n, dtype=torch.bool, device=device)
        pose_features = g.encode_conditions(conditions, dtype)  # once per sample, shared by both CFG branches
        if use_cfg:
            index, keep = torch.cat([index, index]), torch.cat([keep, ~keep])
            pose_features = torch.cat([pose_features, pose_features])
        self.scheduler.set_timesteps(steps, device=device)
        if reuse_reference:
            g.write_reference(reference_latents, embeddings)
        for t in self.scheduler.timesteps:
            if not reuse_reference:
                g.write_reference(reference_latents, embeddings)
            model_input = torch.cat([latents, latents]) if use_cfg else latents
            model_input = self.scheduler.scale_model_input(model_input, t)
            prediction = g.denoise(model_input, t.expand(len(model_input)), embeddings, index=index, keep=keep,
                                  pose_features=pose_features)
            if use_cfg:
                conditional, unconditional = prediction.chunk(2)
                prediction = unconditional + guidance * (conditional - unconditional)
            latents = self.scheduler.step(prediction, t, latents).prev_sample
        g.bank.clear()
        return g.decode_latents(latents).float().cpu()
