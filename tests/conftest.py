"""Shared fixtures: one Anny model per test session and a fabricated SMPL model file."""
from __future__ import annotations

import pickle

import posedive_lib  # noqa: F401  (first: it pins the CPU kernels before numpy loads, see cpu_kernels.py)
import numpy as np
import pytest

from posedive_lib.body.joints import SMPL24_PARENTS


@pytest.fixture(scope="session")
def anny_body():
    from posedive_lib.body.anny_body import AnnyBody

    return AnnyBody()


@pytest.fixture(scope="session")
def smoke_world(tmp_path_factory):
    from posedive_lib.data.synthetic.world import build_world

    return build_world("smoke", root=tmp_path_factory.mktemp("world"), workers=1, progress=False)


@pytest.fixture(scope="session")
def smoke_market(smoke_world, tmp_path_factory):
    """The smoke world's train and test images as a Market-1501 folder (cameras 1-based, as Market names them)."""
    from posedive_lib.data.export import export_market_layout

    rows = smoke_world.subset("train", "test")
    root = tmp_path_factory.mktemp("market") / "Market-1501"
    export_market_layout(rows.assign(camid=rows["camid"] + 1), smoke_world.root, root)
    return root


@pytest.fixture(scope="session")
def renderer(anny_body):
    from posedive_lib.render.pipeline import ConditionRenderer

    return ConditionRenderer(anny_body, width=96, height=192)


@pytest.fixture
def train_smoke_generator():
    """``(out, references, conditions, stop_after=None, config=None, preview=None) -> saved generator folder``: the
    tiny generator (seed 0) trained with ``config`` (default: the smoke preset) on the given images, two per identity."""
    def train(out, references, conditions, stop_after=None, config=None, preview=None):
        import torch

        from posedive_lib.generator.data import PairData
        from posedive_lib.generator.sizes import tiny_generator
        from posedive_lib.generator.train import PRESETS, train_generator

        gen = tiny_generator(image_size=tuple(references.shape[2:]), seed=0)
        pids = [i // 2 for i in range(len(references))]
        data = PairData.from_images(gen, pids, references, (conditions * 255).to(torch.uint8))
        return train_generator(gen, data, out, config or PRESETS["smoke"], progress=False, stop_after=stop_after,
                               preview=preview)

    return train


@pytest.fixture(scope="session")
def jpeg_pixels():
    """``(image) -> float array``: the pixels of a JPEG file, or of an image array after the JPEG encoding that the
    world's and the augmentation's images get (quality 95), to compare a re-rendered image with a saved one exactly."""
    def pixels(image):
        import io

        import numpy as np
        from PIL import Image

        if isinstance(image, np.ndarray):
            buffer = io.BytesIO()
            Image.fromarray(image).save(buffer, format="JPEG", quality=95)
            image = buffer
        return np.asarray(Image.open(image), dtype=float)

    return pixels


@pytest.fixture
def sd15_like_folder():
    """``(root) -> None``: write a tiny folder in the Stable Diffusion 1.5 layout (4-level VAE: x8) to ``root / "sd"``
    and a CLIP image encoder folder to ``root / "clip"``."""
    def write(root):
        from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        from posedive_lib.generator.sizes import TINY_CLIP, TINY_UNET, TINY_VAE

        unet = UNet2DConditionModel(sample_size=(8, 4), **{**TINY_UNET, "cross_attention_dim": 64})
        vae = AutoencoderKL(**{**TINY_VAE, "block_out_channels": (16, 32, 32, 32),
                               "down_block_types": ("DownEncoderBlock2D",) * 4, "up_block_types": ("UpDecoderBlock2D",) * 4})
        unet.save_pretrained(root / "sd" / "unet")
        vae.save_pretrained(root / "sd" / "vae")
        DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(root / "sd" / "scheduler")
        CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP)).save_pretrained(root / "clip")

    return write


def fabricate_smpl_arrays(seed: int = 0) -> dict:
    """Arrays with the names, shapes and dtypes of an SMPL v1.1.0 model file (random content).

    Joint positions are a chain along SMPL's axes (y up, x to the body's left); each vertex
    hangs near one joint and is skinned to it alone, so posing moves it rigidly with its joint.
    """
    rng = np.random.default_rng(seed)
    V, J = 6890, 24
    joints = np.zeros((J, 3))
    offsets = {1: (0.1, -0.1, 0), 2: (-0.1, -0.1, 0), 3: (0, 0.1, 0), 4: (0, -0.4, 0), 5: (0, -0.4, 0),
               6: (0, 0.12, 0), 7: (0, -0.4, 0), 8: (0, -0.4, 0), 9: (0, 0.05, 0), 10: (0, -0.05, 0.1),
               11: (0, -0.05, 0.1), 12: (0, 0.2, 0), 13: (0.08, 0.15, 0), 14: (-0.08, 0.15, 0),
               15: (0, 0.1, 0), 16: (0.1, 0, 0), 17: (-0.1, 0, 0), 18: (0.25, 0, 0), 19: (-0.25, 0, 0),
               20: (0.25, 0, 0), 21: (-0.25, 0, 0), 22: (0.08, 0, 0), 23: (-0.08, 0, 0)}
    for j in range(1, J):
        joints[j] = joints[SMPL24_PARENTS[j]] + np.array(offsets[j])
    owner = np.arange(V) % J
    v_template = joints[owner] + rng.normal(0, 0.02, (V, 3))
    J_regressor = np.zeros((J, V))
    J_regressor[owner, np.arange(V)] = 1.0
    J_regressor /= J_regressor.sum(1, keepdims=True)
    # Shift each joint's vertex cloud so the regressor returns exactly the chain joints.
    for j in range(J):
        v_template[owner == j] += joints[j] - v_template[owner == j].mean(0)
    weights = np.zeros((V, J))
    weights[np.arange(V), owner] = 1.0
    return {
        "v_template": v_template, "shapedirs": rng.normal(0, 1e-3, (V, 3, 10)),
        "posedirs": np.zeros((V, 3, 207)), "J_regressor": J_regressor, "weights": weights,
        "kintree_table": np.array([[2**32 - 1 if p < 0 else p for p in SMPL24_PARENTS], list(range(J))], np.int64),
        "f": rng.integers(0, V, (13776, 3)).astype(np.uint32),
        "_joints": joints,
    }


@pytest.fixture(scope="session")
def smpl_file(tmp_path_factory):
    arrays = fabricate_smpl_arrays()
    joints = arrays.pop("_joints")
    path = tmp_path_factory.mktemp("smpl") / "SMPL_NEUTRAL.pkl"
    with open(path, "wb") as f:
        pickle.dump(arrays, f)
    return path, joints


@pytest.fixture(scope="session")
def write_mars():
    """``(root, market, pids) -> root``: a MARS folder holding, for each of ``pids``, that person's training images of
    the Market-1501 folder ``market`` as one tracklet (``bbox_train/<pid>/<pid>C<camera>T0001F<frame>.jpg``)."""
    import shutil

    from posedive_lib.data.real_datasets import load_market1501

    def write(root, market, pids):
        train = load_market1501(market).query("split == 'train'")
        (root / "bbox_train").mkdir(parents=True, exist_ok=True)
        for pid in pids:
            rows = train[train["pid"] == pid]
            folder = root / "bbox_train" / f"{pid:04d}"
            folder.mkdir()
            for frame, (path, camid) in enumerate(zip(rows["path"], rows["camid"]), start=1):
                shutil.copy(market / path, folder / f"{pid:04d}C{camid}T0001F{frame:03d}.jpg")
        return root

    return write
