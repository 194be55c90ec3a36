"""Camera-based batch normalisation (CBN; Zhuang et al., ECCV 2020), the backbone of one of the paper's Table 1 models.

Every batch normalisation of the model (the backbone's and the BNNeck's) normalises each camera's images with that
camera's own statistics: while training, the statistics of the batch's images from that camera (a camera with a single
image in a batch has none: :func:`without_lone_cameras` leaves such images out, as the authors' code does); at test
time, statistics estimated from the test images of each camera (:func:`adapt_camera_statistics`, no labels needed), so
that no camera's colour or lighting shift reaches the features. The affine weights are shared by all cameras and the
layers keep the state-dict keys of the layers they replace (ImageNet weights load, trained runs reload). The layers
learn each image's camera from :func:`batch_cameras`, entered around every forward pass by the training loop and by
feature extraction.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn


class _CameraNorm:
    """Per-camera normalisation for a ``nn.BatchNorm1d`` or ``nn.BatchNorm2d`` subclass."""

    def _setup(self) -> None:
        self.groups: list[tuple[int, torch.Tensor]] | None = None  # (camid, rows) of the current batch
        self.camera_stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # camid -> (mean, var), for testing
        self._moments: dict[int, list] | None = None  # camid -> [values, sum, sum of squares] while adapting

    @classmethod
    def replacing(cls, norm: nn.modules.batchnorm._BatchNorm):
        """A camera-based layer with ``norm``'s weights and trainability (the state dict keeps its keys and values)."""
        if not (norm.affine and norm.track_running_stats):
            raise ValueError("camera-based BN replaces batch norms with affine weights and running statistics")
        layer = cls(norm.num_features, eps=norm.eps, momentum=norm.momentum)
        layer.load_state_dict(norm.state_dict())
        layer.weight.requires_grad_(norm.weight.requires_grad)
        layer.bias.requires_grad_(norm.bias.requires_grad)
        return layer.to(norm.weight.device, norm.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups is None:
            raise RuntimeError("a camera-based BN model needs each image's camera: pass camids= to embed_images, or "
                               "run the model inside batch_cameras(model, camids)")
        if sum(len(rows) for _, rows in self.groups) != len(x):
            raise ValueError(f"{sum(len(rows) for _, rows in self.groups)} cameras for a batch of {len(x)} images")
        if len(self.groups) == 1:
            return self._normalise(x, self.groups[0][0])
        out = torch.empty_like(x)
        for camid, rows in self.groups:
            rows = rows.to(x.device)
            out[rows] = self._normalise(x[rows], camid)
        return out

    def _normalise(self, x: torch.Tensor, camid: int) -> torch.Tensor:
        if self._moments is not None:  # adapting: accumulate this camera's moments (in float64), normalise by the batch
            dims = [0, *range(2, x.ndim)]
            total = self._moments.setdefault(camid, [0, 0.0, 0.0])
            total[0] += x.numel() // x.shape[1]
            total[1] = total[1] + x.double().sum(dim=dims)
            total[2] = total[2] + x.double().square().sum(dim=dims)
        if self.training or self._moments is not None:
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        if camid not in self.camera_stats:
            raise LookupError(f"no statistics for camera {camid}: run adapt_camera_statistics on its test images first")
        mean, var = (s.to(x.device, x.dtype) for s in self.camera_stats[camid])
        return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)

    def _finish_adapting(self) -> None:
        stats = {}
        for camid, (count, total, squares) in self._moments.items():
            mean = total / count
            stats[camid] = (mean.float(), (squares / count - mean.square()).clamp(min=0).float())
        self.camera_stats, self._moments = stats, None


class CameraBatchNorm1d(_CameraNorm, nn.BatchNorm1d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup()


class CameraBatchNorm2d(_CameraNorm, nn.BatchNorm2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._setup()


def convert_to_camera_bn(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm1d`` and ``BatchNorm2d`` below ``module`` by its camera-based version (in place)."""
    for name, child in module.named_children():
        if isinstance(child, _CameraNorm):
            continue
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)):
            kind = CameraBatchNorm1d if isinstance(child, nn.BatchNorm1d) else CameraBatchNorm2d
            setattr(module, name, kind.replacing(child))
        else:
            convert_to_camera_bn(child)
    return module


def camera_norms(model: nn.Module) -> list[_CameraNorm]:
    return [m for m in model.modules() if isinstance(m, _CameraNorm)]


@contextmanager
def batch_cameras(model: nn.Module, camids) -> Iterator[None]:
    """Tell the camera-based layers of ``model`` the camera of each image of the next forward passes (a no-op for a
    model without them; ``camids`` None leaves them unrouted, and they refuse to run)."""
    layers = camera_norms(model)
    groups = None
    if layers and camids is not None:
        cameras = torch.as_tensor(camids).long().cpu()
        groups = [(int(c), (cameras == c).nonzero().squeeze(1)) for c in cameras.unique()]
    for layer in layers:
        layer.groups = groups
    try:
        yield
    finally:
        for layer in layers:
            layer.groups = None


def without_lone_cameras(camids: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``camids`` and ``tensors`` without the rows of cameras that have a single image in the batch (no statistics)."""
    _, inverse, counts = torch.unique(camids, return_inverse=True, return_counts=True)
    keep = counts[inverse] > 1
    if bool(keep.all()):
        return (camids, *tensors)
    return (camids[keep], *(t[keep.to(t.device)] for t in tensors))


@torch.no_grad()
def adapt_camera_statistics(model: nn.Module, frame: pd.DataFrame, root: str | os.PathLike, batch: int = 256,
                            device: str = "cpu", seed: int = 0) -> None:
    """Estimate, for each camera of ``frame`` (e.g. the query and gallery rows), the statistics of every camera-based
    layer from that camera's images (in batches of at most ``batch``, in an order shuffled with ``seed``), replacing
    earlier ones. A camera needs at least 2 images."""
    from .data import ManifestImages, normalize

    layers = camera_norms(model)
    if not layers:
        return
    counts = frame["camid"].value_counts()
    if (counts < 2).any():
        raise ValueError(f"camera-based BN estimates each camera's statistics from its images, but camera(s) "
                         f"{sorted(counts.index[counts < 2].tolist())} have a single one: add images or drop them")
    model = model.to(device, memory_format=torch.channels_last).eval()
    for layer in layers:
        layer._moments = {}
    try:
        for camid, rows in frame.groupby("camid"):
            data = ManifestImages(rows.sample(frac=1.0, random_state=seed).assign(pid=0), root, model.preset.image_size)
            starts = list(range(0, len(data), batch))
            if len(starts) > 1 and len(data) - starts[-1] < 2:  # no batch of a single image
                starts.pop()
            for start, stop in zip(starts, starts[1:] + [len(data)]):
                images = torch.stack([data[i][0] for i in range(start, stop)]).to(device)
                with batch_cameras(model, [int(camid)] * len(images)):
                    model(normalize(images).contiguous(memory_format=torch.channels_last))
        for layer in layers:
            layer._finish_adapting()
    finally:
        for layer in layers:
            layer._moments = None
