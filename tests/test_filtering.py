"""Keypoint-confidence filtering (with a stand-in estimator) and the mediapipe estimator itself."""
from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from posedive_lib.augment.condition_gallery import GalleryConfig, build_condition_gallery
from posedive_lib.augment.filtering import (FilterThresholds, add_identity_similarity, apply_thresholds, filter_summary,
                                           keypoint_error, keypoint_statistics)
from posedive_lib.augment.generate import AugmentConfig, augment


class BrightnessEstimator:
    """Stand-in: every keypoint's confidence is the image's mean brightness (deterministic, testable)."""

    def estimate(self, images):
        images = np.asarray(images)
        conf = images.reshape(len(images), -1).mean(1) / 255
        keypoints = np.zeros((len(images), 17, 3), np.float32)
        keypoints[..., 2] = conf[:, None]
        return {"keypoints": keypoints, "found": conf > 0, "elevation": np.zeros(len(images)), "azimuth": np.zeros(len(images))}


def test_each_filter_rejects_what_it_should():
    stats = pd.DataFrame({"kp_ref_min": [0.9, 0.1, 0.9, 0.9, 0.9], "kp_target_mean": [0.9, 0.9, 0.1, 0.9, 0.9],
                          "kp_gen_mean": [0.8, 0.8, 0.8, 0.1, 0.8], "kp_gen_diff": [0.1, 0.1, 0.1, 0.1, 0.9]})
    kept = apply_thresholds(stats, FilterThresholds(0.6, 0.6, 0.4, 0.6))
    assert kept["keep"].tolist() == [True, False, False, False, False]
    assert kept["keep_reference"].tolist() == [True, False, True, True, True]
    assert kept["keep_target"].tolist() == [True, True, False, True, True]
    assert kept["keep_generated"].tolist() == [True, True, True, False, False]
    assert len(kept) == len(stats)  # nothing deleted
    sweep = filter_summary(stats)
    assert sweep["keep"].is_monotonic_decreasing and sweep["keep"].tolist()[::5] == [0.2, 0.0]
    assert sweep["keep_reference"].iloc[0] == 0.8  # only the 0.1 reference is below tau = 0.15
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        FilterThresholds(tau_ref=1.5)
    with pytest.raises(ValueError, match="keypoint_statistics"):
        apply_thresholds(stats.drop(columns=["kp_gen_diff"]))


def test_extra_pose_and_identity_filters_are_off_by_default_and_reject_when_set():
    stats = pd.DataFrame({"kp_ref_min": [0.9] * 4, "kp_target_mean": [0.9] * 4, "kp_gen_mean": [0.8] * 4,
                          "kp_gen_diff": [0.1] * 4, "kp_gen_error": [0.02, 0.3, np.nan, 0.02],
                          "id_cosine": [0.8, 0.8, 0.8, 0.1]})
    assert apply_thresholds(stats)["keep"].all() and "keep_pose" not in apply_thresholds(stats)
    kept = apply_thresholds(stats, FilterThresholds(max_keypoint_error=0.1, min_id_cosine=0.5))
    assert kept["keep_pose"].tolist() == [True, False, False, True]  # no keypoint found: rejected
    assert kept["keep_identity"].tolist() == [True, True, True, False]
    assert kept["keep"].tolist() == [True, False, False, False]
    with pytest.raises(ValueError, match="add_identity_similarity"):
        apply_thresholds(stats.drop(columns=["id_cosine"]), FilterThresholds(min_id_cosine=0.5))
    with pytest.raises(ValueError, match="image heights"):
        FilterThresholds(max_keypoint_error=0)


def test_keypoint_error_counts_only_visible_and_confident_keypoints():
    target = np.zeros((2, 17, 3))
    target[..., 2] = 1
    target[1, :, 2] = 0  # nothing visible in the second target
    estimated = np.zeros((2, 17, 3))
    estimated[0, :, 1] = 12.8  # 0.1 image heights below the target at height 128
    estimated[..., 2] = 0.9
    estimated[0, 0] = (500, 500, 0.1)  # far off but not confident: ignored
    error = keypoint_error(estimated, target, height=128)
    assert error[0] == pytest.approx(0.1) and np.isnan(error[1])


def test_statistics_are_recorded_for_every_generated_image(smoke_world, tmp_path):
    from posedive_lib.data.synthetic.world import OracleRenderer

    train = smoke_world.subset("train")
    gallery = build_condition_gallery(GalleryConfig(size=4), cache=tmp_path / "gallery", progress=False)
    folder = f"augmented/filter-test-{tmp_path.name}"  # inside the world: paths and parents share its root
    manifest = augment(train, smoke_world.root, gallery, smoke_world.root / folder, AugmentConfig(per_id=1),
                       oracle=OracleRenderer(smoke_world.config), tag="oracle", progress=False)
    manifest = manifest.assign(path=folder + "/" + manifest["path"])
    stats = keypoint_statistics(manifest, smoke_world.root, gallery, BrightnessEstimator(), progress=False)
    assert len(stats) == len(manifest)
    for column in ("kp_ref_min", "kp_target_mean", "kp_gen_mean", "kp_gen_diff"):
        assert stats[column].between(0, 1).all(), column
    assert (stats["kp_gen_diff"] - (stats["kp_gen_mean"] - stats["kp_target_mean"]).abs()).abs().max() < 1e-6
    # the stand-in puts every keypoint at (0, 0): an error where its confidence counts (>= 0.5), NaN elsewhere
    assert (stats["kp_gen_error"].notna() == (stats["kp_gen_mean"] >= 0.5)).all()
    judged = add_identity_similarity(stats.assign(path=stats["parent"]), smoke_world.root, tiny_judge())
    assert judged["id_cosine"].to_numpy() == pytest.approx(1.0, abs=1e-5)  # an image against itself
    other = add_identity_similarity(stats, smoke_world.root, tiny_judge())["id_cosine"]
    assert other.between(-1, 1).all() and (other < 0.9999).all()
    with pytest.raises(ValueError, match="not in this gallery"):
        keypoint_statistics(manifest.assign(condition_id="nope"), smoke_world.root, gallery, BrightnessEstimator(), progress=False)


def tiny_judge():
    import torch

    from posedive_lib.reid.model import ReIDModel

    torch.manual_seed(0)
    return ReIDModel(num_classes=4, backbone="tiny").eval()


needs_mediapipe = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="mediapipe not installed")


@needs_mediapipe
def test_mediapipe_finds_people_and_their_viewpoint_on_the_synthetic_world(smoke_world):
    from PIL import Image

    from posedive_lib.augment.keypoints import PoseEstimator
    from posedive_lib.render.viewpoint import angular_difference

    rows = smoke_world.subset("train", "oracle").head(12)
    images = np.stack([np.asarray(Image.open(smoke_world.root / p).convert("RGB")) for p in rows["path"]])
    out = PoseEstimator().estimate(images)
    assert out["found"].mean() >= 0.5
    kp = out["keypoints"][out["found"]]
    assert (kp[..., 2].mean(1) > 0.3).all() and kp[..., 0].max() <= 64 * 1.2 and kp[..., 1].max() <= 128 * 1.2
    error = angular_difference(out["azimuth"][out["found"]], rows["azimuth"].to_numpy()[out["found"]])
    assert np.median(np.abs(error)) < 60
    with pytest.raises(ValueError, match="uint8"):
        PoseEstimator().estimate(images.astype(np.float32))
