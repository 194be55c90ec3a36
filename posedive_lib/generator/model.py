"""The Pose-dIVE generator: reference U-Net + denoising U-Net + pose guider, with a frozen VAE and CLIP.

The reference U-Net sees the reference image's latent at timestep 0; its self-attention inputs are
read by the denoising U-Net's self-attention (see :mod:`.reference_attention`). The pose guider's
features are added to the output of the denoising U-Net's ``conv_in`` through a forward hook, so the
U-Nets stay stock diffusers models whose weights load from any Stable Diffusion folder. Cross-attention
takes the CLIP image embedding of the reference instead of text.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import nn
from transformers import CLIPVisionModelWithProjection

from ..paths import atomic_output
from .pose_guider import PoseGuider
from .reference_attention import install_reference_attention

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
COMPONENTS = ("reference_unet", "denoising_unet", "pose_guider", "vae", "image_encoder", "scheduler")
_LOADERS = {"reference_unet": UNet2DConditionModel, "denoising_unet": UNet2DConditionModel, "pose_guider": PoseGuider,
            "vae": AutoencoderKL, "image_encoder": CLIPVisionModelWithProjection, "scheduler": DDPMScheduler}


class PoseDiveGenerator(nn.Module):
    """All parts of the generator; ``trainable`` holds the parts that train (U-Nets and guider)."""

    def __init__(self, reference_unet: UNet2DConditionModel, denoising_unet: UNet2DConditionModel, pose_guider: PoseGuider,
                 vae: AutoencoderKL, image_encoder: CLIPVisionModelWithProjection, scheduler: DDPMScheduler,
                 image_size: tuple[int, int] = (384, 192)):
        super().__init__()
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        if pose_guider.downsampling_factor != factor:
            raise ValueError(f"the pose guider downsamples by {pose_guider.downsampling_factor} but the VAE by {factor}: "
                             "give the guider one stage per VAE downsampling")
        if pose_guider.config.embedding_channels != denoising_unet.config.block_out_channels[0]:
            raise ValueError("the pose guider's embedding_channels must equal the U-Net's first block width "
                             f"({denoising_unet.config.block_out_channels[0]})")
        if image_encoder.config.projection_dim != denoising_unet.config.cross_attention_dim:
            raise ValueError(f"the CLIP projection ({image_encoder.config.projection_dim}) must equal the U-Net's "
                             f"cross_attention_dim ({denoising_unet.config.cross_attention_dim})")
        height, width = image_size
        if height % (factor * 4) or width % (factor * 4):
            raise ValueError(f"image size {image_size} must be a multiple of {factor * 4} (VAE x U-Net downsampling)")
        self.reference_unet, self.denoising_unet, self.pose_guider = reference_unet, denoising_unet, pose_guider
        self.vae, self.image_encoder, self.scheduler = vae, image_encoder, scheduler
        self.image_size = (int(height), int(width))
        self.vae.requires_grad_(False)
        self.image_encoder.requires_grad_(False)
        self.bank = install_reference_attention(reference_unet, denoising_unet)
        self._pose_features: torch.Tensor | None = None
        denoising_unet.conv_in.register_forward_hook(self._add_pose_features)
        self.register_buffer("clip_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("clip_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)

    def _add_pose_features(self, module, inputs, output):
        return output if self._pose_features is None else output + self._pose_features.to(output.dtype)

    @property
    def trainable(self) -> nn.ModuleDict:
        return nn.ModuleDict({"reference_unet": self.reference_unet, "denoising_unet": self.denoising_unet,
                              "pose_guider": self.pose_guider})

    @property
    def latent_size(self) -> tuple[int, int]:
        factor = self.pose_guider.downsampling_factor
        return self.image_size[0] // factor, self.image_size[1] // factor

    # -- frozen encoders -------------------------------------------------------------------------
    def check_images(self, pixels: torch.Tensor, what: str = "images") -> None:
        if pixels.ndim != 4 or pixels.shape[1] != 3 or tuple(pixels.shape[2:]) != self.image_size:
            raise ValueError(f"{what} must be (B, 3, {self.image_size[0]}, {self.image_size[1]}) in [-1, 1], "
                             f"got {tuple(pixels.shape)}")

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> scaled VAE latents (the posterior mean)."""
        self.check_images(pixels)
        return self.vae.encode(pixels.to(self.vae.dtype)).latent_dist.mode() * self.vae.config.scaling_factor

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents -> images (B, 3, H, W) in [-1, 1]."""
        return self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample.clamp(-1, 1)

    @torch.no_grad()
    def embed_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> CLIP image embeddings (B, 1, D) for cross-attention."""
        size = self.image_encoder.config.image_size
        x = F.interpolate((pixels + 1) / 2, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
        x = (x - self.clip_mean) / self.clip_std
        return self.image_encoder(pixel_values=x.to(self.image_encoder.dtype)).image_embeds.unsqueeze(1)

    # -- the two U-Nets ----------------------------------------------------------------------------
    def write_reference(self, reference_latents: torch.Tensor, embeddings: torch.Tensor) -> None:
        """Run the reference U-Net at timestep 0 and keep its self-attention inputs in the bank."""
        self.bank.clear()
        self.bank.writing = True
        try:
            t = torch.zeros(len(reference_latents), dtype=torch.long, device=reference_latents.device)
            self.reference_unet(reference_latents, t, encoder_hidden_states=embeddings)
        finally:
            self.bank.writing = False

    def encode_conditions(self, conditions: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Condition maps (B, 7, H, W) -> pose guider features at the latent resolution (constant over denoising steps)."""
        return self.pose_guider(conditions.to(dtype or next(self.pose_guider.parameters()).dtype))

    def denoise(self, noisy_latents: torch.Tensor, timesteps: torch.Tensor, embeddings: torch.Tensor,
                conditions: torch.Tensor | None = None, index: torch.Tensor | None = None, keep: torch.Tensor | None = None,
                pose_features: torch.Tensor | None = None) -> torch.Tensor:
        """The denoising U-Net's prediction; sample ``b`` uses reference row ``index[b]`` unless ``keep[b]`` is False.

        ``embeddings`` are per reference row (indexed like the bank); dropped samples get a zero embedding
        and no reference tokens (the unconditional branch of classifier-free guidance). Give the condition
        maps per sample, or their ``pose_features`` from :meth:`encode_conditions` (a sampler computes them
        once and reuses them at every step).
        """
        if (conditions is None) == (pose_features is None):
            raise ValueError("give either the condition maps or their pose_features (exactly one of the two)")
        if index is not None:
            embeddings = embeddings[index]
        if keep is not None:
            embeddings = embeddings * keep.view(-1, 1, 1).to(embeddings.dtype)
        self._pose_features = self.encode_conditions(conditions, noisy_latents.dtype) if pose_features is None else pose_features
        self.bank.route(index, keep)
        try:
            return self.denoising_unet(noisy_latents, timesteps, encoder_hidden_states=embeddings).sample
        finally:
            self._pose_features = None
            self.bank.route()

    # -- saving ------------------------------------------------------------------------------------
    def save_pretrained(self, folder: str | os.PathLike) -> None:
        """One sub-folder per component (diffusers / transformers format) and ``generator.json``, written
        as one folder that replaces ``folder`` only when complete."""
        with atomic_output(Path(folder)) as tmp:
            for name in COMPONENTS:
                getattr(self, name).save_pretrained(tmp / name)
            (tmp / "generator.json").write_text(json.dumps({"image_size": list(self.image_size)}))

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, dtype: torch.dtype = torch.float32) -> "PoseDiveGenerator":
        """Load a generator saved with :meth:`save_pretrained`."""
        folder = saved_generator(folder)
        try:
            image_size = tuple(json.loads((folder / "generator.json").read_text())["image_size"])
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{folder / 'generator.json'} is damaged (no image_size); save the generator again") from None
        parts = {}
        for name in COMPONENTS:
            source = folder / name
            if not source.is_dir():
                raise FileNotFoundError(f"generator component {name!r} is missing from {folder}: save the generator again")
            try:
                parts[name] = _LOADERS[name].from_pretrained(source) if name == "scheduler" else \
                    _LOADERS[name].from_pretrained(source, torch_dtype=dtype)
            except (OSError, ValueError) as error:  # weights or config missing or damaged
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise ValueError(f"generator component {name!r} in {folder} cannot be loaded ({first}); "
                                 "save the generator again") from error
        return cls(**parts, image_size=image_size)


def is_saved_generator(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` holds a finished :meth:`PoseDiveGenerator.save_pretrained` (its ``generator.json``)."""
    return (Path(folder) / "generator.json").is_file()


def saved_generator(folder: str | os.PathLike) -> Path:
    """``folder`` if it holds a generator saved with :meth:`PoseDiveGenerator.save_pretrained`, else a clear error
    (e.g. a Stable Diffusion download or a training run's folder instead of its ``generator`` sub-folder)."""
    folder = Path(folder)
    if not is_saved_generator(folder):
        raise FileNotFoundError(f"{folder} holds no saved generator (generator.json missing): pass a folder written "
                                "by PoseDiveGenerator.save_pretrained (e.g. models/tiny-stage1) or train one first")
    return folder


def weights_digest(folder: str | os.PathLike) -> str:
    """Content digest of a saved model folder (its weight files and configs), for cache keys.

    Configs are hashed without ``_name_or_path``, where diffusers and transformers record the folder a
    component was loaded from: the same weights give the same key wherever the project lives."""
    import hashlib

    from ..data.manifest import content_hash

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".json"))
    if not files:
        raise FileNotFoundError(f"no weights in {folder}: pass a saved generator folder")
    listing = [(f.relative_to(folder).as_posix(), _config_hash(f) if f.suffix == ".json" else content_hash(f))
               for f in files]
    return hashlib.sha1(json.dumps(listing).encode()).hexdigest()[:12]


def _config_hash(path: Path) -> str:
    import hashlib

    config = json.loads(path.read_text())
    if isinstance(config, dict):
        config.pop("_name_or_path", None)
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
