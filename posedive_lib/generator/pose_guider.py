"""Pose guiders: one small convolutional encoder per condition map, fused and added after ``conv_in``.

Follows Moore-AnimateAnyone's guider (3x3 convolutions, a stride-2 convolution per stage, SiLU) with
one encoder per condition as in Champ. The paper concatenates the per-condition features along
channels (``fuse="concat"``, the default: one zero-initialised convolution maps the concatenation to
the U-Net's first block width); Champ sums per-condition outputs (``fuse="sum"``: one zero-initialised
output convolution per condition). Either way an untrained guider outputs zeros, so the pretrained
U-Net starts unchanged.
"""
from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

FUSE_MODES = ("concat", "sum")


def zero_module(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def _trunk(in_channels: int, block_out_channels: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_channels, block_out_channels[0], 3, padding=1), nn.SiLU()]
    for c_in, c_out in zip(block_out_channels[:-1], block_out_channels[1:]):
        layers += [nn.Conv2d(c_in, c_in, 3, padding=1), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1, stride=2), nn.SiLU()]
    return nn.Sequential(*layers)


class PoseGuider(ModelMixin, ConfigMixin):
    """Condition maps (B, sum(condition_channels), H, W) in [0, 1] -> (B, embedding_channels, H/f, W/f).

    ``f = 2 ** (len(block_out_channels) - 1)`` must equal the VAE's downsampling factor.
    """

    @register_to_config
    def __init__(self, conditions: tuple[str, ...] = ("depth", "normal", "skeleton"),
                 condition_channels: tuple[int, ...] = (1, 3, 3), block_out_channels: tuple[int, ...] = (16, 32, 64, 128),
                 embedding_channels: int = 320, fuse: str = "concat"):
        super().__init__()
        if fuse not in FUSE_MODES:
            raise ValueError(f"fuse must be one of {FUSE_MODES}, got {fuse!r}")
        if len(conditions) != len(condition_channels) or not conditions:
            raise ValueError(f"give one channel count per condition: {conditions} vs {condition_channels}")
        self.trunks = nn.ModuleDict({name: _trunk(c, tuple(block_out_channels)) for name, c in zip(conditions, condition_channels)})
        width = block_out_channels[-1]
        if fuse == "concat":
            self.conv_out = zero_module(nn.Conv2d(width * len(conditions), embedding_channels, 3, padding=1))
        else:
            self.conv_outs = nn.ModuleDict({name: zero_module(nn.Conv2d(width, embedding_channels, 3, padding=1))
                                            for name in conditions})

    @property
    def downsampling_factor(self) -> int:
        return 2 ** (len(self.config.block_out_channels) - 1)

    def forward(self, conditions: torch.Tensor) -> torch.Tensor:
        expected = sum(self.config.condition_channels)
        if conditions.ndim != 4 or conditions.shape[1] != expected:
            raise ValueError(f"condition maps must be (B, {expected}, H, W) "
                             f"({'+'.join(self.config.conditions)}), got {tuple(conditions.shape)}")
        parts = torch.split(conditions, list(self.config.condition_channels), dim=1)
        features = [self.trunks[name](x) for name, x in zip(self.config.conditions, parts)]
        if self.config.fuse == "concat":
            return self.conv_out(torch.cat(features, dim=1))
        return sum(self.conv_outs[name](f) for name, f in zip(self.config.conditions, features))
