"""Reading image files of a manifest: one reader, one clear error for a corrupt or missing file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

def read_rgb(path: str | os.PathLike, size: tuple[int, int] | None = None, resample: str = "bilinear") -> np.ndarray:
    """The image at ``path`` as (H, W, 3) uint8 RGB, resized to ``size`` = (H, W) when given."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size and image.size != (size[1], size[0]):
                image = image.resize((size[1], size[0]), Image.Resampling[resample.upper()])
            return np.asarray(image).copy()
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read image {path} ({error}); fix the file or drop it from the manifest") from None


def read_rgb_stack(paths: Iterable[str], root: str | os.PathLike, size: tuple[int, int] | None = None,
                   resample: str = "bilinear") -> np.ndarray:
    """(N, H, W, 3) uint8 images of manifest ``paths`` under ``root`` (all of one size, or resized to ``size``)."""
    images = [read_rgb(Path(root) / p, size, resample) for p in paths]
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise ValueError(f"images of different sizes {sorted(shapes)[:3]}: pass size=(H, W) to resize them")
    return np.stack(images)
