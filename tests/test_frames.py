"""Frames folders (clips of frames with their condition maps): reading, bad input, and training a generator on one."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from posedive_lib.cli import main
from posedive_lib.data.synthetic.world_conditions import world_conditions
from posedive_lib.generator.data import load_images, stack_conditions
from posedive_lib.generator.frames import read_frames, train_on_frames, write_clip
from posedive_lib.generator.model import PoseDiveGenerator, is_saved_generator
from posedive_lib.generator.sizes import tiny_generator
from posedive_lib.generator.train import PRESETS, GeneratorTrainConfig

SIZE = (64, 32)


@pytest.fixture(scope="module")
def world_clips(smoke_world, tmp_path_factory):
    """The smoke world's train images of three identities, one clip per identity, with their rows and maps."""
    rows = smoke_world.subset("train")
    maps = world_conditions(smoke_world, "train", progress=False)
    pids = sorted(rows["pid"].unique())[:3]
    root = tmp_path_factory.mktemp("frames")
    chosen = []
    for pid in pids:
        index = np.flatnonzero(rows["pid"].to_numpy() == pid)[:4]
        images = np.stack([np.asarray(Image.open(smoke_world.root / rows["path"][i]).convert("RGB")) for i in index])
        write_clip(root, f"person{pid:04d}", images, {name: maps[name][index] for name in ("depth", "normal", "skeleton")})
        chosen.extend(index)
    return root, rows.iloc[chosen].reset_index(drop=True), {k: maps[k][chosen] for k in ("depth", "normal", "skeleton")}


def test_a_written_clip_reads_back_as_the_worlds_images_and_maps(smoke_world, world_clips):
    root, rows, maps = world_clips
    height, width = smoke_world.config.height, smoke_world.config.width
    frames = read_frames(root, (height, width), progress=False)
    assert frames.images.dtype == torch.uint8
    assert torch.equal(frames.images.float() / 127.5 - 1, load_images(rows, smoke_world.root))
    assert torch.equal(frames.conditions, stack_conditions(maps))
    assert frames.clips == [f"person{pid:04d}" for pid in sorted(rows["pid"].unique())]
    assert list(frames.pids) == list(pd.factorize(rows["pid"])[0])
    assert frames.paths[0] == f"{frames.clips[0]}/images/000000.png"


def test_frames_are_resized_thinned_evenly_and_dwpose_is_the_skeleton(world_clips, tmp_path):
    root, rows, _ = world_clips
    frames = read_frames(root, SIZE, frames_per_clip=2, progress=False)
    assert frames.images.shape == (6, 3, *SIZE) and frames.conditions.shape == (6, 7, *SIZE)
    assert frames.conditions.dtype == frames.images.dtype == torch.uint8
    assert [p.rsplit("/", 1)[1] for p in frames.paths[:2]] == ["000000.png", "000003.png"]  # first and last of 4
    clip = tmp_path / "c"
    shutil.copytree(root / frames.clips[0], clip / "a")
    (clip / "a" / "skeleton").rename(clip / "a" / "dwpose")
    renamed = read_frames(clip, SIZE, progress=False)
    assert torch.equal(renamed.conditions, read_frames(root, SIZE, progress=False).conditions[:4])


def _clip(root, name="a", frames=2, size=(32, 16)):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (frames, *size, 3), dtype=np.uint8)
    maps = {"depth": images[..., 0], "normal": images, "skeleton": 255 - images}
    return write_clip(root, name, images, maps)


def test_bad_frames_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_frames(tmp_path / "nowhere", SIZE)
    with pytest.raises(FileNotFoundError, match="no clip folders"):
        read_frames(tmp_path, SIZE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no images/ folder"):
        read_frames(tmp_path, SIZE)
    (tmp_path / "empty").rmdir()
    clip = _clip(tmp_path)
    (tmp_path / ".ipynb_checkpoints").mkdir()  # hidden folders and files are not frames
    (clip / "images" / "._000000.png").write_bytes(b"macOS resource fork")
    assert read_frames(tmp_path, SIZE, progress=False).paths == ["a/images/000000.png", "a/images/000001.png"]
    with pytest.raises(ValueError, match="frames_per_clip must be at least 2"):
        read_frames(tmp_path, SIZE, frames_per_clip=1)
    Image.new("RGB", (16, 32)).save(clip / "images" / "000001.jpg")
    with pytest.raises(ValueError, match="000001.jpg and 000001.png share the name '000001'"):
        read_frames(tmp_path, SIZE, progress=False)
    (clip / "images" / "000001.jpg").unlink()
    Image.fromarray(np.full((32, 16), 4000, np.uint16)).save(clip / "depth" / "000000.png")
    with pytest.raises(ValueError, match=r"depth/000000.png is a I;16 image; condition maps are 8-bit"):
        read_frames(tmp_path, SIZE, progress=False)
    Image.new("L", (16, 32)).save(clip / "depth" / "000000.png")
    (clip / "normal" / "000001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"a/images/000001.png has no normal map \(a file named 000001.png or .jpg"):
        read_frames(tmp_path, SIZE, progress=False)
    Image.new("RGB", (17, 32)).save(clip / "normal" / "000001.png")
    with pytest.raises(ValueError, match=r"normal map 000001.png is 17 x 32, its frame 000001.png 16 x 32"):
        read_frames(tmp_path, SIZE, progress=False)
    (clip / "normal" / "000001.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"cannot read image .*000001.png"):
        read_frames(tmp_path, SIZE, progress=False)
    for name in ("normal", "skeleton"):
        for path in (clip / name).iterdir():
            path.unlink()
        (clip / name).rmdir()
    with pytest.raises(FileNotFoundError, match=r"a: no normal/ folder of normal maps"):
        read_frames(tmp_path, SIZE, progress=False)


@pytest.fixture
def tiny_start(tmp_path):
    tiny_generator(image_size=SIZE, seed=0).save_pretrained(tmp_path / "start")
    return tmp_path / "start"


def test_train_on_frames_saves_a_generator_reuses_it_and_refuses_other_inputs(tmp_path, tiny_start, monkeypatch):
    frames = tmp_path / "frames"
    for name in ("a", "b"):
        _clip(frames, name, frames=3)
    config = PRESETS["smoke"]
    final = train_on_frames(frames, tmp_path / "run", tiny_start, config, progress=False)
    assert len(pd.read_csv(tmp_path / "run" / "loss.csv")) == config.steps
    assert (tmp_path / "run" / "loss_curve.png").is_file()
    trained, start = PoseDiveGenerator.from_pretrained(final), PoseDiveGenerator.from_pretrained(tiny_start)
    assert trained.image_size == SIZE
    assert not torch.equal(trained.pose_guider.conv_out.weight, start.pose_guider.conv_out.weight)  # guiders trained
    stamp = (final / "generator.json").stat().st_mtime_ns
    import posedive_lib.data.manifest as manifest_module

    hashed = []
    monkeypatch.setattr(manifest_module, "content_hash", lambda path, real=manifest_module.content_hash: hashed.append(path) or real(path))
    assert train_on_frames(frames, tmp_path / "run", tiny_start, config, progress=False) == final
    assert (final / "generator.json").stat().st_mtime_ns == stamp  # reused, not trained again
    assert not [p for p in hashed if frames in p.parents]  # and no frame or map read again (size and time unchanged)
    record = json.loads((tmp_path / "run" / "frames_run.json").read_text())
    assert record["start"].startswith("saved generator ") and len(record["frames"]) == 6 * 4  # frames and maps
    other = GeneratorTrainConfig(steps=5, batch=4)
    with pytest.raises(ValueError, match="holds a training run with other config"):
        train_on_frames(frames, tmp_path / "run", tiny_start, other, progress=False)
    Image.fromarray(np.zeros((32, 16), np.uint8)).save(frames / "a" / "depth" / "000001.png")  # a map re-made
    with pytest.raises(ValueError, match="holds a training run with other frames"):
        train_on_frames(frames, tmp_path / "run", tiny_start, config, progress=False)
    assert [p.name for p in hashed if frames in p.parents] == ["000001.png"]  # only the changed file was read
    shutil.copytree(tmp_path / "run", tmp_path / "unrecorded")
    (tmp_path / "unrecorded" / "frames_run.json").unlink()
    with pytest.raises(ValueError, match="without its frames_run.json"):
        train_on_frames(frames, tmp_path / "unrecorded", tiny_start, config, progress=False)
    # a first attempt that failed before its first checkpoint does not lock the folder
    (tmp_path / "failed").mkdir()
    shutil.copy(tmp_path / "run" / "frames_run.json", tmp_path / "failed")
    assert is_saved_generator(train_on_frames(frames, tmp_path / "failed", tiny_start, config, progress=False))
    _clip(frames, "c", frames=1)
    with pytest.warns(UserWarning, match="1 clip\\(s\\) with a single frame \\(first 'c'\\) are not used"):
        assert train_on_frames(frames, tmp_path / "failed", tiny_start, config, progress=False) == tmp_path / "failed" / "generator"
    single = tmp_path / "single"
    _clip(single, "a", frames=1)
    with pytest.raises(ValueError, match="every clip has a single frame"):
        train_on_frames(single, tmp_path / "run2", tiny_start, config, progress=False)
    with pytest.raises(ValueError, match="name an unsaved start generator"):
        train_on_frames(frames, tmp_path / "run3", tiny_generator(image_size=SIZE), config, progress=False)
    assert not (tmp_path / "run2").exists() and not (tmp_path / "run3").exists()


def test_cli_trains_from_stable_diffusion_folders_and_checks_its_arguments(tmp_path, sd15_like_folder, monkeypatch):
    sd15_like_folder(tmp_path)
    frames = tmp_path / "frames"
    _clip(frames, "a", frames=2, size=(64, 32))
    out = tmp_path / "run"
    assert main(["train-generator", "--frames", str(frames), "--out", str(out), "--sd15", str(tmp_path / "sd"),
                 "--clip", str(tmp_path / "clip"), "--image-size", "64", "32", "--steps", "2", "--batch", "2"]) == 0
    trained = PoseDiveGenerator.from_pretrained(out / "generator")
    assert trained.image_size == SIZE and trained.pose_guider.downsampling_factor == 8
    assert "sd15" in json.loads((out / "frames_run.json").read_text())["start"]
    monkeypatch.chdir(tmp_path)  # --start relative to the current folder: the previous stage's output
    assert main(["train-generator", "--frames", "frames", "--out", "stage2", "--start", "run/generator", "--steps", "1",
                 "--batch", "2"]) == 0
    assert PoseDiveGenerator.from_pretrained(tmp_path / "stage2" / "generator").image_size == SIZE
    for argv, message in ((["--sd15", str(tmp_path / "sd")], "--sd15 and --clip go together"),
                          (["--start", str(tmp_path)], "no saved generator there"),
                          (["--start", str(out / "generator"), "--steps", "0"], "--steps must be at least 1"),
                          (["--start", str(out / "generator"), "--lr", "0"], "--lr must be positive"),
                          (["--start", str(out / "generator"), "--image-size", "64", "32"], "--image-size goes with --sd15")):
        with pytest.raises(SystemExit, match=message):
            main(["train-generator", "--frames", str(frames), "--out", str(tmp_path / "x"), *argv])
    with pytest.raises(SystemExit, match="frames folder .* does not exist"):
        main(["train-generator", "--frames", str(tmp_path / "none"), "--out", str(tmp_path / "x"),
              "--start", str(out / "generator")])
    assert not (tmp_path / "x").exists()
