"""Re-ID models: a backbone, global average pooling, a BNNeck and an identity classifier (BoT).

Backbones come from ``transformers`` (never torchvision): ``ResNetModel`` for the BoT / Diff-ID
ResNet-50 and for the tiny CPU preset (same code, smaller config), and ``CLIPVisionModel`` loaded
from a local folder for a CLIP-ReID-like ViT preset.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class BackbonePreset:
    kind: str  # "resnet" or "clip"
    image_size: tuple[int, int]  # (height, width)
    embedding_size: int = 64
    hidden_sizes: tuple = (256, 512, 1024, 2048)
    depths: tuple = (3, 4, 6, 3)
    layer_type: str = "bottleneck"
    last_stride_one: bool = True
    camera_bn: bool = False  # camera-based batch normalisation (CBN) in every batch norm, the BNNeck's included


BACKBONES = {
    "resnet50": BackbonePreset("resnet", (256, 128)),
    "tiny": BackbonePreset("resnet", (128, 64), embedding_size=16, hidden_sizes=(16, 32, 64, 128),
                           depths=(1, 1, 1, 1), layer_type="basic"),
    "clip_vit_b16": BackbonePreset("clip", (256, 128)),
    "resnet50_cbn": BackbonePreset("resnet", (256, 128), camera_bn=True),
    "tiny_cbn": BackbonePreset("resnet", (128, 64), embedding_size=16, hidden_sizes=(16, 32, 64, 128),
                               depths=(1, 1, 1, 1), layer_type="basic", camera_bn=True),
}


def check_backbone_weights(backbone: str, pretrained_path: str | os.PathLike | None) -> None:
    """Refuse, before any training, backbone weights that the ``backbone`` preset cannot load or reload: a missing
    CLIP folder, a folder without a transformers config, another model type, or a ResNet of another shape (trained
    runs are reloaded with the preset's architecture)."""
    import json

    preset = BACKBONES[backbone]
    if pretrained_path is None:
        if preset.kind == "clip":
            raise FileNotFoundError(f"the {backbone} backbone needs local CLIP weights: pass their folder (pretrained_path, "
                                    "--pretrained)")
        return
    folder = Path(pretrained_path)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{pretrained_path} has no config.json: pass a model folder in the transformers format")
    weights = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
    if not any((folder / name).is_file() for name in weights):
        raise FileNotFoundError(f"{pretrained_path} has a config.json but no weights ({', '.join(weights[:2])}): "
                                "download the model's weights too")
    config = json.loads(config_path.read_text())
    kinds = {"resnet": ("resnet",), "clip": ("clip", "clip_vision_model")}[preset.kind]
    if config.get("model_type") not in kinds:
        raise ValueError(f"{pretrained_path} holds a {config.get('model_type')!r} model; the {backbone} backbone takes "
                         f"{' or '.join(kinds)} weights")
    if preset.kind == "resnet":
        from transformers import ResNetConfig

        built = ResNetConfig(embedding_size=preset.embedding_size, hidden_sizes=list(preset.hidden_sizes),
                             depths=list(preset.depths), layer_type=preset.layer_type).to_dict()
        keys = ("embedding_size", "hidden_sizes", "depths", "layer_type", "hidden_act", "downsample_in_first_stage",
                "downsample_in_bottleneck")  # what shapes the network (trained runs reload with the preset's)
        expected = {key: built.get(key) for key in keys}
        differ = {key: config.get(key, built.get(key)) for key in keys if config.get(key, built.get(key)) != expected[key]}
        if differ:
            raise ValueError(f"{pretrained_path} is a ResNet with {differ}, but the {backbone} backbone is {expected}: "
                             "pass weights of that shape (e.g. microsoft/resnet-50 for resnet50)")


class ResNetBackbone(nn.Module):
    """``transformers.ResNetModel`` feature map, optionally with the last stage's stride set to 1 (BoT)."""

    def __init__(self, preset: BackbonePreset, pretrained_path: str | os.PathLike | None = None):
        super().__init__()
        from transformers import ResNetConfig, ResNetModel

        if pretrained_path:
            self.net = ResNetModel.from_pretrained(_existing(pretrained_path, "ResNet"))
        else:
            self.net = ResNetModel(ResNetConfig(embedding_size=preset.embedding_size, hidden_sizes=list(preset.hidden_sizes),
                                                depths=list(preset.depths), layer_type=preset.layer_type))
        if preset.last_stride_one:
            for module in self.net.encoder.stages[-1].layers[0].modules():
                if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
                    module.stride = (1, 1)
        self.out_dim = self.net.config.hidden_sizes[-1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        fmap = self.net(pixel_values=images).last_hidden_state
        return fmap.mean(dim=(2, 3))


class CLIPBackbone(nn.Module):
    """CLIP image encoder (pooled output, projected) from a local folder, positional embeddings resized."""

    def __init__(self, preset: BackbonePreset, pretrained_path: str | os.PathLike | None):
        super().__init__()
        from transformers import CLIPVisionModelWithProjection

        if not pretrained_path:
            raise FileNotFoundError("the CLIP preset needs local weights: pass pretrained_path=<folder with "
                                    "config.json and model.safetensors of openai/clip-vit-base-patch16>")
        self.net = CLIPVisionModelWithProjection.from_pretrained(_existing(pretrained_path, "CLIP"))
        self.out_dim = self.net.config.projection_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=images, interpolate_pos_encoding=True).image_embeds


def _existing(path, what: str) -> str:
    if not Path(path).is_dir():
        raise FileNotFoundError(f"{what} weights folder {path} not found; pass a folder saved with save_pretrained")
    return str(path)


class ReIDModel(nn.Module):
    """Backbone -> pooled feature -> BNNeck -> classifier. Training returns (feature, logits); eval the BN feature."""

    def __init__(self, num_classes: int, backbone: str = "tiny", pretrained_path: str | os.PathLike | None = None):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; use one of {sorted(BACKBONES)}")
        if num_classes < 2:
            raise ValueError(f"need at least 2 training identities, got {num_classes}")
        preset = BACKBONES[backbone]
        self.preset = preset
        self.backbone = (ResNetBackbone if preset.kind == "resnet" else CLIPBackbone)(preset, pretrained_path)
        dim = self.backbone.out_dim
        self.bnneck = nn.BatchNorm1d(dim)
        self.bnneck.bias.requires_grad_(False)  # BoT: no shift after the neck
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)
        if preset.camera_bn:  # every batch norm, the BNNeck's included
            from .camera_bn import convert_to_camera_bn

            convert_to_camera_bn(self)

    def forward(self, images: torch.Tensor):
        feature = self.backbone(images)
        neck = self.bnneck(feature)
        if self.training:
            return feature, self.classifier(neck)
        return neck

    def parameter_groups(self, lr_backbone: float, lr_head: float, weight_decay: float) -> list[dict]:
        """Optimizer groups: backbone and head (BNNeck + classifier) with their own learning rates."""
        head = list(self.bnneck.parameters()) + list(self.classifier.parameters())
        return [{"params": [p for p in self.backbone.parameters() if p.requires_grad], "lr": lr_backbone,
                 "weight_decay": weight_decay},
                {"params": [p for p in head if p.requires_grad], "lr": lr_head, "weight_decay": weight_decay}]
