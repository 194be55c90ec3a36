"""Reading image files of a manifest: one reader, one clear error for a corrupt or missing file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np


def read_image(path: str | os.PathLike, size: tuple[int, int] | None = None, resample: str = "bilinear",
               mode: str = "RGB") -> np.ndarray:
    """The image at ``path`` as uint8, (H, W, 3) for ``mode`` "RGB" or (H, W) for "L" (grey), resized to
    ``size`` = (H, W) when given."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            if size and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling[resample.upper()])
            return np.asarray(image).copy()
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path} ({error}); fix the file or remove it") from None


def resize_image(array: np.ndarray, size: tuple[int, int], resample: str = "bilinear") -> np.ndarray:
    """A uint8 image array resized to ``size`` = (H, W) (unchanged if it has that size)."""
    from PIL import Image

    if array.shape[:2] == tuple(size):
        return array
    return np.asarray(Image.fromarray(array).resize((size[1], size[0]), Image.Resampling[resample.upper()]))


def read_rgb(path: str | os.PathLike, size: tuple[int, int] | None = None, resample: str = "bilinear") -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB, resized to ``size`` = (H, W) when given."""
    return read_image(path, size, resample)


def read_rgb_stack(paths: Iterable[str], root: str | os.PathLike, size: tuple[int, int] | None = None,
                   resample: str = "bilinear") -> np.ndarray:
    """(N, H, W, 3) uint8 images of manifest ``paths`` under ``root`` (all of one size, or resized to ``size``)."""
    images = [read_rgb(Path(root) / p, size, resample) for p in paths]
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise ValueError(f"images of different sizes {sorted(shapes)[:3]}: pass size=(H, W) to resize them")
    return np.stack(images)
