"""The one image reader: sizes, resizing and a clear error for a corrupt file."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from posedive_lib.data.images import read_rgb, read_rgb_stack


def test_reader_returns_rgb_resizes_and_names_a_corrupt_file(tmp_path):
    Image.fromarray(np.full((8, 4), 200, np.uint8)).save(tmp_path / "grey.png")  # greyscale in, RGB out
    Image.fromarray(np.zeros((6, 6, 3), np.uint8)).save(tmp_path / "square.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    image = read_rgb(tmp_path / "grey.png")
    assert image.shape == (8, 4, 3) and image.dtype == np.uint8 and (image == 200).all()
    assert read_rgb(tmp_path / "grey.png", size=(16, 8)).shape == (16, 8, 3)
    with pytest.raises(ValueError, match="broken.jpg"):
        read_rgb(tmp_path / "broken.jpg")
    with pytest.raises(ValueError, match="different sizes"):
        read_rgb_stack(["grey.png", "square.png"], tmp_path)
    assert read_rgb_stack(["grey.png", "square.png"], tmp_path, size=(8, 4)).shape == (2, 8, 4, 3)
