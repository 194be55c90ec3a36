"""Camera-based batch normalisation (CBN; Zhuang et al., ECCV 2020), the backbone of one of the paper's Table 1 models.

Every ``BatchNorm2d`` of the backbone normalises each camera's images with that camera's own statistics: while
training, the statistics of the batch's images from that camera; at test time, statistics estimated from the test
images of each camera (:func:`adapt_camera_statistics`, no labels needed), so that no camera's colour or lighting
shift reaches the features. The affine weights are shared by all cameras. The layers learn each image's camera from
:func:`batch_cameras`, which the training loop and feature extraction enter around every forward pass.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn


class CameraBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` that normalises the images of each camera of a batch with that camera's statistics."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)
        self.camids: torch.Tensor | None = None  # cameras of the current batch (set by batch_cameras)
        self.camera_stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # camid -> (mean, var), for testing
        self._sums: dict[int, list] | None = None  # camid -> [images, sum of means, sum of variances] while adapting

    @classmethod
    def replacing(cls, norm: nn.BatchNorm2d) -> "CameraBatchNorm2d":
        """A camera-based layer with ``norm``'s weights, so the state dict keeps its keys and values."""
        layer = cls(norm.num_features, norm.eps, norm.momentum)
        layer.load_state_dict(norm.state_dict())
        return layer.to(norm.weight.device, norm.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.camids is None:
            raise RuntimeError("a camera-based BN model needs each image's camera: call it inside "
                               "batch_cameras(model, camids)")
        if len(self.camids) != len(x):
            raise ValueError(f"{len(self.camids)} cameras for a batch of {len(x)} images")
        out = torch.empty_like(x)
        for camid in self.camids.unique().tolist():
            rows = (self.camids == camid).to(x.device)
            out[rows] = self._normalise(x[rows], int(camid))
        return out

    def _normalise(self, x: torch.Tensor, camid: int) -> torch.Tensor:
        if self._sums is not None:  # adapting: accumulate this camera's statistics
            total = self._sums.setdefault(camid, [0, 0.0, 0.0])
            total[0] += len(x)
            total[1] = total[1] + x.mean(dim=(0, 2, 3)) * len(x)
            total[2] = total[2] + x.var(dim=(0, 2, 3)) * len(x)
        if self.training or self._sums is not None:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        if camid not in self.camera_stats:
            raise KeyError(f"no statistics for camera {camid}: run adapt_camera_statistics on its test images first")
        mean, var = self.camera_stats[camid]
        return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)


def convert_to_camera_bn(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` below ``module`` by a :class:`CameraBatchNorm2d` with its weights (in place)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, CameraBatchNorm2d):
            setattr(module, name, CameraBatchNorm2d.replacing(child))
        else:
            convert_to_camera_bn(child)
    return module


def camera_norms(model: nn.Module) -> list[CameraBatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, CameraBatchNorm2d)]


@contextmanager
def batch_cameras(model: nn.Module, camids) -> Iterator[None]:
    """Tell the camera-based layers of ``model`` the camera of each image of the next forward passes (a no-op for a
    model without them; ``camids`` None leaves them unrouted, and they refuse to run)."""
    layers = camera_norms(model)
    cameras = torch.as_tensor(camids).long() if layers and camids is not None else None
    for layer in layers:
        layer.camids = cameras
    try:
        yield
    finally:
        for layer in layers:
            layer.camids = None


@torch.no_grad()
def adapt_camera_statistics(model: nn.Module, frame: pd.DataFrame, root: str | os.PathLike, batch: int = 256,
                            device: str = "cpu") -> None:
    """Estimate, for each camera of ``frame`` (e.g. the query and gallery rows), the per-camera statistics of every
    camera-based layer from that camera's images (averaged over batches of at most ``batch``), replacing earlier ones."""
    from .data import ManifestImages, normalize

    layers = camera_norms(model)
    if not layers:
        return
    model = model.to(device, memory_format=torch.channels_last).eval()
    for layer in layers:
        layer._sums = {}
    try:
        for camid, rows in frame.groupby("camid"):
            data = ManifestImages(rows.assign(pid=0), root, model.preset.image_size)
            for start in range(0, len(data), batch):
                images = torch.stack([data[i][0] for i in range(start, min(start + batch, len(data)))]).to(device)
                with batch_cameras(model, [int(camid)] * len(images)):
                    model(normalize(images).contiguous(memory_format=torch.channels_last))
        for layer in layers:
            layer.camera_stats = {camid: (total[1] / total[0], total[2] / total[0])
                                  for camid, total in layer._sums.items()}
    finally:
        for layer in layers:
            layer._sums = None
