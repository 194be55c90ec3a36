"""Generator sizes: ``tiny`` (same classes, small configs, trains on a CPU) and ``sd15`` (Stable Diffusion 1.5).

``sd15`` loads a Stable Diffusion 1.5-format folder (``unet/``, ``vae/``, ``scheduler/``) and a CLIP
image encoder folder from local paths (or hub ids when online); both U-Nets start from the same SD
weights, as in AnimateAnyone. ``tiny`` builds random U-Nets and CLIP and takes a small VAE trained on
synthetic images (see :mod:`.autoencoder`).
"""
from __future__ import annotations

import os
from pathlib import Path

from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from .model import PoseDiveGenerator
from .pose_guider import PoseGuider

# Training noise schedule shared by both sizes: v-prediction with zero terminal SNR (the anchors' choice).
SCHEDULE = dict(prediction_type="v_prediction", rescale_betas_zero_snr=True, timestep_spacing="trailing", clip_sample=False)

TINY_UNET = dict(
    in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 96, 128),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=64, attention_head_dim=4, norm_num_groups=16,
)
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=(16, 32, 64),
    down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=8,
    mid_block_add_attention=False,  # fully convolutional: trains on crops, 3x faster on a CPU
)
# Stable Diffusion 1.5's architecture (runwayml / stable-diffusion-v1-5) and CLIP ViT-L/14's image tower, for
# random-weight builds (GPU benchmarks); real runs load the weights with :func:`sd15_generator`.
SD15_UNET = dict(
    in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)
SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
    sample_size=512,
)
SD15_CLIP = dict(image_size=224, patch_size=14, hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                 num_attention_heads=16, projection_dim=768, hidden_act="quick_gelu")
# SD 1.5's scheduler folder; DDPMScheduler keeps the DDIM-only keys for the sampler's DDIMScheduler.from_config.
SD15_SCHEDULER = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                      set_alpha_to_one=False, steps_offset=1)
TINY_CLIP = dict(image_size=64, patch_size=8, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, projection_dim=64)


def latent_size(vae: AutoencoderKL, image_size: tuple[int, int]) -> tuple[int, int]:
    """The latent (height, width) of ``image_size`` images: the VAE halves them at every level but the first."""
    factor = 2 ** (len(vae.config.block_out_channels) - 1)
    return image_size[0] // factor, image_size[1] // factor


def pose_guider_for(vae: AutoencoderKL, unet: UNet2DConditionModel, fuse: str = "concat") -> PoseGuider:
    """A pose guider that downsamples as ``vae`` does and whose output width is ``unet``'s first block's."""
    return PoseGuider(block_out_channels=(16, 32, 64, 128)[:len(vae.config.block_out_channels)],
                      embedding_channels=unet.config.block_out_channels[0], fuse=fuse)


def tiny_vae(image_size: tuple[int, int] = (128, 64)) -> AutoencoderKL:
    """An untrained small VAE (x4 downsampling, 4 latent channels)."""
    return AutoencoderKL(sample_size=max(image_size), **TINY_VAE)


def tiny_generator(vae: AutoencoderKL | None = None, image_size: tuple[int, int] = (128, 64), fuse: str = "concat",
                   seed: int = 0) -> PoseDiveGenerator:
    """The tiny generator with random U-Nets, guider and CLIP; ``vae`` defaults to an untrained tiny VAE."""
    import torch

    torch.manual_seed(seed)
    vae = vae or tiny_vae(image_size)
    unets = [UNet2DConditionModel(sample_size=latent_size(vae, image_size), **TINY_UNET) for _ in range(2)]
    guider = pose_guider_for(vae, unets[1], fuse)
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP)).eval()
    return PoseDiveGenerator(unets[0], unets[1], guider, vae, clip, DDPMScheduler(**SCHEDULE), image_size)


def sd15_random_generator(image_size: tuple[int, int] = (384, 192), fuse: str = "concat", seed: int = 0,
                          device: str = "cpu") -> PoseDiveGenerator:
    """The ``sd15`` architecture with random weights, built directly on ``device`` (for speed and memory benchmarks)."""
    import torch

    torch.manual_seed(seed)
    with torch.device(device):
        vae = AutoencoderKL(**SD15_VAE)
        unets = [UNet2DConditionModel(sample_size=latent_size(vae, image_size), **SD15_UNET) for _ in range(2)]
        guider = pose_guider_for(vae, unets[1], fuse)
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**SD15_CLIP)).eval()
        scheduler = DDPMScheduler.from_config({**SD15_SCHEDULER, **SCHEDULE})
        generator = PoseDiveGenerator(unets[0], unets[1], guider, vae, clip, scheduler, image_size)
    return generator.to(device)


def _looks_like_hub_id(name: str) -> bool:
    """``owner/name`` (a model hub id) rather than a local path."""
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "~"))


def sd15_generator(sd_path: str | os.PathLike, clip_path: str | os.PathLike, image_size: tuple[int, int] = (384, 192),
                   fuse: str = "concat") -> PoseDiveGenerator:
    """Stable Diffusion 1.5 U-Net (twice), VAE and scheduler from ``sd_path``; CLIP image encoder from ``clip_path``."""
    for path, what, parts in ((sd_path, "Stable Diffusion 1.5 folder (unet/, vae/, scheduler/)", ("unet", "vae", "scheduler")),
                              (clip_path, "CLIP image encoder folder (config.json + weights)", (".",))):
        if Path(path).exists():
            configs = {part: Path(path) / part / ("scheduler_config.json" if part == "scheduler" else "config.json")
                       for part in parts}
            missing = [str(config.relative_to(path)) for config in configs.values() if not config.is_file()]
            if missing:
                raise FileNotFoundError(f"{path} is not a {what}: missing {missing}")
        elif not _looks_like_hub_id(str(path)):
            raise FileNotFoundError(f"{what} not found at {path}: download it (e.g. "
                                    "stable-diffusion-v1-5/stable-diffusion-v1-5, openai/clip-vit-large-patch14) and pass its path")
    unet = UNet2DConditionModel.from_pretrained(sd_path, subfolder="unet")
    reference = UNet2DConditionModel.from_pretrained(sd_path, subfolder="unet")
    vae = AutoencoderKL.from_pretrained(sd_path, subfolder="vae")
    scheduler = DDPMScheduler.from_pretrained(sd_path, subfolder="scheduler", **SCHEDULE)
    clip = CLIPVisionModelWithProjection.from_pretrained(clip_path).eval()
    return PoseDiveGenerator(reference, unet, pose_guider_for(vae, unet, fuse), vae, clip, scheduler, image_size)
