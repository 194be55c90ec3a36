"""Re-ID training and test images from manifests, and batch augmentations (kornia, on any device)."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import Dataset

from ..data.images import read_rgb

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IN_MEMORY_LIMIT = 8 * 2**30  # bytes of decoded images a training set may hold in memory (more: read on access)


class ManifestImages(Dataset):
    """Images of a manifest resized to (height, width), as uint8 tensors, with contiguous labels and their cameras.

    With ``in_memory`` every image is decoded once up front (small data sets such as the synthetic
    world); otherwise images are read on access. ``None`` decides by size: in memory when the decoded images take
    at most :data:`IN_MEMORY_LIMIT` bytes (Market-1501 at 256 x 128 takes 1.2 GiB, MARS 45 GiB).
    """

    def __init__(self, frame: pd.DataFrame, root: str | os.PathLike, size: tuple[int, int],
                 in_memory: bool | None = False):
        if frame.empty:
            raise ValueError("no images: the manifest selection is empty")
        self.frame, self.root, self.size = frame.reset_index(drop=True), Path(root), tuple(size)
        if in_memory is None:
            in_memory = len(self.frame) * 3 * self.size[0] * self.size[1] <= IN_MEMORY_LIMIT
        pids = sorted(self.frame["pid"].unique())
        self.label_of = {int(p): i for i, p in enumerate(pids)}
        self.labels = torch.tensor([self.label_of[int(p)] for p in self.frame["pid"]])
        self.camids = torch.tensor(self.frame["camid"].to_numpy(dtype="int64"))  # for camera-based BN
        self._cache = [self._read(i) for i in range(len(self.frame))] if in_memory else None

    @property
    def in_memory(self) -> bool:
        return self._cache is not None

    @property
    def num_classes(self) -> int:
        return len(self.label_of)

    def _read(self, index: int) -> torch.Tensor:
        image = read_rgb(self.root / self.frame["path"].iloc[index], self.size, resample="bilinear")
        return torch.from_numpy(image).permute(2, 0, 1)

    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, index: int):
        image = self._cache[index] if self._cache is not None else self._read(index)
        return image, self.labels[index], self.camids[index]


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float, ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255.0 - mean) / std


def train_augmentation(size: tuple[int, int], padding: int = 10, erase_p: float = 0.5):
    """BoT augmentations on normalised batches: flip, pad-and-crop, random erasing."""
    import kornia.augmentation as K

    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=0.5),
        K.RandomCrop(size, padding=padding, padding_mode="constant"),
        K.RandomErasing(p=erase_p, scale=(0.02, 0.4), ratio=(0.3, 3.3), value=0.0),
    )


def select_training_rows(frame: pd.DataFrame, generated_cap: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Train rows of a manifest; with ``generated_cap`` at most that many non-real rows per identity."""
    train = frame[frame["split"] == "train"]
    if generated_cap is None:
        return train.reset_index(drop=True)
    if generated_cap < 0:
        raise ValueError(f"generated_cap must be >= 0 or None, got {generated_cap}")
    real = train[train["source"] == "real"]
    extra = train[train["source"] != "real"].sample(frac=1.0, random_state=seed)
    extra = extra.groupby("pid", group_keys=False).head(generated_cap)
    return pd.concat([real, extra]).reset_index(drop=True)
