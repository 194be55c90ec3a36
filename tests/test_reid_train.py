"""Re-ID models and training: BoT structure, augmentation, learning, exact resume, features."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from posedive_lib.data.synthetic.world import WORLD_PROFILES, build_world
from posedive_lib.reid.data import normalize, select_training_rows, train_augmentation
from posedive_lib.reid.model import ReIDModel
from posedive_lib.reid.train import TrainConfig, extract_features, load_reid_model, train_reid

TINY = TrainConfig(iterations=6, checkpoint_every=3, P=4, K=2, warmup=2, milestones=())


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(WORLD_PROFILES["smoke"], root=tmp_path_factory.mktemp("world"), workers=1, progress=False)


def test_bot_resnet50_has_last_stride_one_and_bnneck():
    model = ReIDModel(5, "resnet50").eval()
    fmap = model.backbone.net(torch.zeros(1, 3, 256, 128)).last_hidden_state
    assert fmap.shape == (1, 2048, 16, 8)  # stride 16 instead of 32
    assert not model.bnneck.bias.requires_grad and model.classifier.bias is None
    model.train()
    feature, logits = model(torch.zeros(2, 3, 256, 128))
    assert feature.shape == (2, 2048) and logits.shape == (2, 5)


def test_model_errors_and_parameter_groups():
    with pytest.raises(ValueError, match="unknown backbone"):
        ReIDModel(5, "resnet999")
    with pytest.raises(FileNotFoundError, match="local weights"):
        ReIDModel(5, "clip_vit_b16")
    groups = ReIDModel(5, "tiny").parameter_groups(1e-5, 1e-4, 5e-4)
    assert [g["lr"] for g in groups] == [1e-5, 1e-4] and len(groups[1]["params"]) == 2  # BN weight + classifier


def test_augmentation_keeps_size_and_changes_pixels():
    torch.manual_seed(0)
    images = torch.randint(0, 255, (8, 3, 128, 64), dtype=torch.uint8)
    out = train_augmentation((128, 64), erase_p=1.0)(normalize(images))
    assert out.shape == (8, 3, 128, 64)
    assert not torch.allclose(out, normalize(images))


def test_generated_rows_can_be_capped_per_identity():
    frame = pd.DataFrame({"pid": [1] * 5 + [2] * 5, "split": "train",
                          "source": ["real", "real", "generated", "generated", "generated"] * 2})
    assert len(select_training_rows(frame)) == 10
    capped = select_training_rows(frame, generated_cap=1)
    assert capped.groupby(["pid", "source"]).size().to_dict() == {(1, "generated"): 1, (1, "real"): 2,
                                                                   (2, "generated"): 1, (2, "real"): 2}


def test_training_learns(world, tmp_path):
    config = TrainConfig(iterations=40, checkpoint_every=20, P=4, K=2, warmup=5, milestones=(), erase_p=0.0, lr=2e-3)
    train_reid(world.subset("train"), world.root, tmp_path, config, progress=False)
    log = pd.read_csv(tmp_path / "log.csv")
    assert len(log) == 40
    assert log.ce.iloc[-5:].mean() < 0.8 * log.ce.iloc[:5].mean()


def test_interrupted_training_resumes_exactly(world, tmp_path):
    """A killed run resumes as if never interrupted; images read on access (large sets) train the same run as
    images held in memory."""
    train = world.subset("train")
    straight = train_reid(train, world.root, tmp_path / "a", TINY, progress=False, in_memory=True)
    partial = train_reid(train, world.root, tmp_path / "b", TINY, progress=False, stop_after=3, in_memory=False)
    assert not partial.exists() and (tmp_path / "b" / "checkpoint" / "progress.json").is_file()
    saved = json.loads((tmp_path / "b" / "checkpoint" / "progress.json").read_text())
    assert saved == {"step": 3, "mixed_precision": "fp16" if torch.cuda.is_available() else "no"}  # resumed in it
    with open(tmp_path / "b" / "log.csv", "a") as log:  # killed after logging a segment, before its checkpoint
        log.write("4,9.9,9.9,9.9,0.1\n5,9.9,9.")
    resumed = train_reid(train, world.root, tmp_path / "b", TINY, progress=False, in_memory=False)
    a, b = load_file(straight), load_file(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    logs = [pd.read_csv(tmp_path / folder / "log.csv") for folder in ("a", "b")]
    assert logs[1]["step"].tolist() == list(range(1, TINY.iterations + 1))  # each step once, the redone ones
    pd.testing.assert_frame_equal(logs[0], logs[1])
    assert not (tmp_path / "b" / "checkpoint").exists()
    from dataclasses import replace

    train_reid(train, world.root, tmp_path / "c", TINY, progress=False, stop_after=3)
    for folder in ("b", "c"):  # a finished run is not reused, an interrupted one not resumed, with other settings
        with pytest.raises(ValueError, match=r"other settings: lr=0\.00035 \(asked 0\.001\); delete that folder"):
            train_reid(train, world.root, tmp_path / folder, replace(TINY, lr=1e-3), progress=False)


def test_training_images_are_held_in_memory_up_to_a_size(world, monkeypatch):
    from posedive_lib.reid import data

    train = world.subset("train")
    assert data.ManifestImages(train, world.root, (32, 16), in_memory=None).in_memory
    monkeypatch.setattr(data, "IN_MEMORY_LIMIT", len(train) * 3 * 32 * 16 - 1)  # one byte short: read on access
    images = data.ManifestImages(train, world.root, (32, 16), in_memory=None)
    assert not images.in_memory and images[0][0].shape == (3, 32, 16)


def test_features_from_a_trained_model(world, tmp_path):
    train_reid(world.subset("train"), world.root, tmp_path, TINY, progress=False)
    model = load_reid_model(tmp_path)
    test = world.subset("test")
    features = extract_features(model, test, world.root, batch=16)
    flipped = extract_features(model, test, world.root, batch=16, flip=True)
    assert features.shape == (len(test), 128) and torch.isfinite(features).all()
    assert not torch.allclose(features, flipped)
    with pytest.raises(FileNotFoundError, match="no trained weights"):
        load_reid_model(tmp_path / "missing")
    (tmp_path / "model.safetensors").write_bytes(b"junk")  # a damaged run: named, with the fix
    with pytest.raises(ValueError, match="unreadable .*train again"):
        load_reid_model(tmp_path)


@pytest.mark.parametrize("shape", [(8, 3, 5, 5), (8, 3)])
def test_camera_based_bn_normalises_each_camera_with_its_own_statistics(shape):
    from torch import nn

    from posedive_lib.reid.camera_bn import batch_cameras, convert_to_camera_bn, without_lone_cameras

    plain = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(3)
    model = convert_to_camera_bn(nn.Sequential(plain)).train()
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    x[:4] += 5.0  # camera 1 is much brighter than camera 2
    cameras = torch.tensor([1, 1, 1, 1, 2, 2, 2, 2])
    assert list(model.state_dict()) == ["0." + key for key in plain.state_dict()]  # same keys: weights load as before
    with batch_cameras(model, torch.ones(8)):  # one camera: plain batch normalisation
        torch.testing.assert_close(model(x), plain(x), rtol=0, atol=0)
    with batch_cameras(model, cameras):
        trained = model(x)
    dims = [0, *range(2, len(shape))]
    for camera in (1, 2):  # each camera centred on its own mean; one BN for all leaves them +-2.5 apart
        assert trained[cameras == camera].mean(dim=dims).abs().max() < 1e-5
    assert plain(x)[:4].mean() > 0.8
    # test time: statistics estimated per camera give the images the normalisation training gave them
    model.eval()
    layer = model[0]
    layer._moments = {}
    with batch_cameras(model, cameras):
        model(x)
    layer._finish_adapting()
    assert sorted(layer.camera_stats) == [1, 2]
    with batch_cameras(model, cameras):
        torch.testing.assert_close(model(x), trained, rtol=0, atol=1e-5)
    with pytest.raises(RuntimeError, match="camids="):
        model(x)  # no cameras given
    with batch_cameras(model, cameras[:6]), pytest.raises(ValueError, match="6 cameras for a batch of 8"):
        model(x)
    with batch_cameras(model, torch.full((8,), 3)), pytest.raises(LookupError, match="adapt_camera_statistics"):
        model(x)  # a camera without test statistics
    kept, rows = without_lone_cameras(torch.tensor([1, 2, 2, 3, 1]), torch.arange(5))
    assert kept.tolist() == [1, 2, 2, 1] and rows.tolist() == [0, 1, 2, 4]


def test_camera_based_bn_is_only_in_its_presets_and_keeps_the_weights_keys():
    from posedive_lib.reid.camera_bn import camera_norms

    plain, cbn = ReIDModel(5, "tiny"), ReIDModel(5, "tiny_cbn")
    assert camera_norms(plain) == [] and len(camera_norms(cbn)) == sum(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in plain.modules())  # the BNNeck included
    assert list(plain.state_dict()) == list(cbn.state_dict()) and not cbn.bnneck.bias.requires_grad


def test_camera_based_bn_model_trains_adapts_to_the_test_cameras_and_reloads(world, tmp_path):
    from dataclasses import replace

    from posedive_lib.reid.camera_bn import adapt_camera_statistics, camera_norms
    from posedive_lib.reid.data import ManifestImages
    from posedive_lib.reid.experiment import evaluate_model

    config = replace(TINY, backbone="tiny_cbn")
    train_reid(world.subset("train"), world.root, tmp_path, config, progress=False)
    model = load_reid_model(tmp_path)
    assert json.loads((tmp_path / "train_config.json").read_text())["backbone"] == "tiny_cbn"
    test = world.subset("test")
    metrics = evaluate_model(model, test, world.root)  # estimates each test camera's statistics first
    assert metrics["num_valid_queries"] > 0 and np.isfinite(metrics["mAP"])
    cameras = sorted(test["camid"].unique())
    stem = camera_norms(model)[0]  # the stem's norm: its statistics are those of the first convolution's output
    assert sorted(stem.camera_stats) == cameras
    rows = test[test["camid"] == cameras[0]]
    data = ManifestImages(rows, world.root, model.preset.image_size)
    with torch.no_grad():
        conv = model.backbone.net.embedder.embedder.convolution(normalize(torch.stack([data[i][0] for i in range(len(data))])))
    torch.testing.assert_close(stem.camera_stats[cameras[0]][0], conv.mean(dim=(0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(stem.camera_stats[cameras[0]][1], conv.var(dim=(0, 2, 3), unbiased=False), rtol=1e-4, atol=1e-5)
    first = rows.head(4)
    own = extract_features(model, first, world.root)
    other = extract_features(model, first.assign(camid=cameras[1]), world.root)  # the same images, another camera's
    assert not torch.allclose(own, other)  # statistics: other features
    with pytest.raises(LookupError, match="no statistics for camera 99"):
        extract_features(model, first.assign(camid=99), world.root)
    with pytest.raises(ValueError, match=r"camera\(s\) \[99\] have a single one"):
        adapt_camera_statistics(model, pd.concat([test, first.head(1).assign(camid=99)]), world.root)


def test_training_uses_its_thread_count_and_restores_the_callers(world, tmp_path):
    from dataclasses import replace

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        train_reid(world.subset("train"), world.root, tmp_path, replace(TINY, threads=1), progress=False)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_runs_side_by_side_give_the_same_rows_as_one_after_the_other(world, tmp_path):
    from dataclasses import replace

    from posedive_lib.reid.experiment import run_settings

    train, test = world.subset("train"), world.subset("test")
    settings = {"all": lambda: train, "half": lambda: train[train["pid"].isin(train["pid"].unique()[:4])]}
    config = replace(TINY, threads=1)
    alone = run_settings(settings, test, world.root, tmp_path / "alone", [0, 1], config, progress=False, workers=1)
    pooled = run_settings(settings, test, world.root, tmp_path / "pooled", [0, 1], config, progress=False, workers=2)
    assert list(alone["setting"]) == ["all", "half", "all", "half"] and list(alone["seed"]) == [0, 0, 1, 1]
    pd.testing.assert_frame_equal(alone, pooled)
    assert alone.loc[0, "train_images"] == len(train) > alone.loc[1, "train_images"]
    import multiprocessing

    def no_pool(*args, **kwargs):
        raise AssertionError("a worker pool was started for finished runs")

    with pytest.MonkeyPatch.context() as patch:  # finished runs are scored here, with the pool's thread count
        patch.setattr(multiprocessing, "get_context", no_pool)
        pd.testing.assert_frame_equal(
            run_settings(settings, test, world.root, tmp_path / "pooled", [0, 1], config, progress=False, workers=2),
            pooled)
    import shutil

    for run in (tmp_path / "pooled").glob("*/seed1"):  # seed 1 to train again: all four in one pool, seed 0 scored
        shutil.rmtree(run)
    pools, get_context, thread_counts = [], multiprocessing.get_context, []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(multiprocessing, "get_context", lambda *args: pools.append(args) or get_context(*args))
        patch.setattr(torch, "set_num_threads", thread_counts.append)  # in this process only (workers are spawned)
        pd.testing.assert_frame_equal(
            run_settings(settings, test, world.root, tmp_path / "pooled", [0, 1], config, progress=False, workers=2),
            pooled)
    assert len(pools) == 1
    assert thread_counts == []  # setting torch's thread count here would change the last bits of later work here


def test_bad_training_config():
    with pytest.raises(ValueError, match="P, K >= 2"):
        TrainConfig(K=1)
    with pytest.raises(ValueError, match="threads"):
        TrainConfig(threads=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        TrainConfig(label_smoothing=1.5)
    with pytest.raises(ValueError, match="lr and lr_head must be positive"):
        TrainConfig(lr=-1e-3)
    with pytest.raises(ValueError, match="must not be negative"):
        TrainConfig(warmup=-5)
    with pytest.raises(ValueError, match="gamma"):
        TrainConfig(gamma=0.0)
    with pytest.raises(ValueError, match="milestones"):
        TrainConfig(milestones=(0.5, 1.2))
    with pytest.raises(ValueError, match="erase_p"):
        TrainConfig(erase_p=1.5)


def test_clip_backbone_loads_from_a_local_folder(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                              image_size=32, patch_size=16, projection_dim=24)
    CLIPVisionModelWithProjection(config).save_pretrained(tmp_path / "clip")
    model = ReIDModel(5, "clip_vit_b16", tmp_path / "clip").train()
    feature, logits = model(torch.randn(2, 3, 256, 128))  # position embeddings interpolated to 16 x 8 patches
    assert feature.shape == (2, 24) and logits.shape == (2, 5)
    with pytest.raises(FileNotFoundError, match="not found"):
        ReIDModel(5, "clip_vit_b16", tmp_path / "missing")
