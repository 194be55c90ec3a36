"""The synthetic Re-ID world: identities, viewpoint cues, capture bias, determinism, caching, resume."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from posedive_lib.body.poses import GaitPoses, Pose
from posedive_lib.data.manifest import content_hash
from posedive_lib.data.synthetic.appearance import PALETTE, PATTERNS, sample_identity
from posedive_lib.data.synthetic.person_renderer import STUDIO, PersonRenderer, Shot
from posedive_lib.data.synthetic.world import WORLD_PROFILES, WorldConfig, build_world, plan_shots
from posedive_lib.render.viewpoint import angular_difference

SMOKE = WORLD_PROFILES["smoke"]


@pytest.fixture(scope="module")
def person_renderer(anny_body):
    return PersonRenderer(body=anny_body)


def test_identity_attributes_vary_like_a_population():
    rng = np.random.default_rng(0)
    people = [sample_identity(i, rng) for i in range(300)]
    assert {p.pattern for p in people} == set(PATTERNS)
    assert 0.2 < np.mean([p.backpack is not None for p in people]) < 0.4
    assert 0.15 < np.mean([p.bag_side != 0 for p in people]) < 0.35
    assert 0.3 < np.mean([p.long_hair for p in people]) < 0.5
    # Colours are shared between identities (a palette), so no single cue identifies a person.
    uppers = np.array([p.upper for p in people])
    nearest = np.linalg.norm(uppers[:, None] - PALETTE[None], axis=-1).argmin(1)
    assert np.bincount(nearest, minlength=len(PALETTE)).min() >= 5  # every palette colour worn by several people


def test_backpack_is_a_viewpoint_dependent_cue(person_renderer):
    base = sample_identity(1, np.random.default_rng(3))
    green = np.array([0.0, 1.0, 0.0])
    person = dataclasses.replace(base, pid=10**6, backpack=green, bag_side=0, bag=None,
                                 upper=np.array([0.8, 0.1, 0.1]), upper_second=np.array([0.1, 0.1, 0.8]),
                                 lower=np.array([0.2, 0.2, 0.2]), shoes=np.array([0.3, 0.3, 0.3]))
    pose = Pose("rest", np.zeros((23, 3)))
    shots = [Shot(person, pose, 5.0, azimuth, STUDIO, 0) for azimuth in (0.0, 90.0, 180.0)]
    images = person_renderer.render(shots).images.astype(int)
    greenish = [((im[..., 1] > 100) & (im[..., 0] < 60) & (im[..., 2] < 60)).sum() for im in images]
    front, side, back = greenish
    assert back > 150 and back > 5 * max(front, 1) and side > front


def test_rendered_crops_frame_the_person_with_visible_keypoints(person_renderer):
    rng = np.random.default_rng(1)
    shots = [Shot(sample_identity(i, rng), GaitPoses(0)[i], 10.0, 45.0 * i, STUDIO, i) for i in range(8)]
    out = person_renderer.render(shots)
    assert out.images.shape == (8, 128, 64, 3) and out.images.dtype == np.uint8
    u, v, visible = out.keypoints[..., 0], out.keypoints[..., 1], out.keypoints[..., 2]
    assert np.all((u >= 0) & (u < 64) & (v >= 0) & (v < 128))
    assert visible.mean() > 0.6
    # Torso-measured viewpoints follow the commanded ones for walking poses.
    assert np.median(angular_difference(out.azimuth, 45.0 * np.arange(8))) < 10


def test_condition_maps_alone_match_those_rendered_with_the_images(person_renderer):
    rng = np.random.default_rng(2)
    shots = [Shot(sample_identity(i, rng), GaitPoses(0)[i], 20.0, 70.0 * i, STUDIO, i) for i in range(4)]
    with_images = person_renderer.render(shots, conditions=True).conditions
    alone = person_renderer.render_conditions(shots)
    assert with_images.mask.any(axis=(1, 2)).all()  # every body is in frame
    for name in ("depth", "normal", "skeleton", "mask", "keypoints", "elevation", "azimuth"):
        np.testing.assert_array_equal(getattr(alone, name), getattr(with_images, name), err_msg=name)
    assert alone.pose_ids == with_images.pose_ids


def test_shot_plan_is_deterministic_and_biased_as_designed():
    shots = plan_shots(WORLD_PROFILES["quick"])
    assert shots == plan_shots(WORLD_PROFILES["quick"])
    assert shots != plan_shots(dataclasses.replace(WORLD_PROFILES["quick"], seed=1))
    train = [s for s in shots if s.set == "train"]
    test = [s for s in shots if s.set == "test"]
    train_az = np.array([s.azimuth for s in train])
    front_or_back = np.minimum(angular_difference(train_az, 0), angular_difference(train_az, 180))
    assert front_or_back.max() <= 25.0 + 1e-6  # no side views in training
    assert max(s.elevation for s in train) <= 10.0 and {s.pose_source for s in train} <= {"gait", "standing"}
    test_az = np.array([s.azimuth for s in test])
    side = np.minimum(angular_difference(test_az, 90), angular_difference(test_az, 270)) < 30
    assert side.mean() > 0.25 and max(s.elevation for s in test) > 25
    assert 0.4 < np.mean([s.pose_source == "external_test" for s in test]) < 0.6
    assert not {s.pid for s in train} & {s.pid for s in test}


def test_smoke_world_manifest_images_and_splits(smoke_world):
    m = smoke_world.manifest
    config = smoke_world.config
    assert len(m) == len(plan_shots(config))
    counts = m.groupby("set").size().to_dict()
    assert counts == {"train": 6 * 4, "test": 6 * 6, "oracle": 6 * 3, "fashion": 4 * 3}
    test = smoke_world.subset("test")
    per_camera = test[test.split == "query"].groupby(["pid", "camid"]).size()
    assert (per_camera == 1).all() and len(per_camera) == 6 * 3
    assert set(smoke_world.subset("oracle").pid) == set(smoke_world.subset("train").pid)
    assert set(m[m.set == "fashion"].dataset) == {"synthetic_fashion"}
    assert set(m[m.set == "oracle"].source) == {"oracle"}
    for path in m.path.iloc[::10]:
        with Image.open(smoke_world.root / path) as image:
            assert image.size == (64, 128)


def test_world_is_cached_and_resumes_a_killed_build(smoke_world):
    root = smoke_world.root
    again = build_world(SMOKE, root=root, workers=1, progress=False)
    assert again.rendered_images == 0 and again.manifest.equals(smoke_world.manifest)
    # Simulate a build killed after all chunks but one: that chunk alone is rendered again, identically.
    (root / "manifest.csv").unlink()
    (root / "parts" / "chunk_00001.csv").unlink()
    rows = smoke_world.manifest.iloc[64:128]
    before = {p: content_hash(root / p) for p in rows.path}
    torch.set_num_threads(2)
    resumed = build_world(SMOKE, root=root, workers=1, progress=False)
    assert resumed.rendered_images == len(rows)
    assert torch.get_num_threads() == 2  # rendering in this process leaves the caller's thread count alone
    assert {p: content_hash(root / p) for p in rows.path} == before
    assert resumed.manifest.equals(smoke_world.manifest)


def test_bad_world_config_is_rejected():
    with pytest.raises(ValueError, match="multiple of test_cameras"):
        WorldConfig(test_per_id=7, test_cameras=6)
    with pytest.raises(ValueError, match="sizes must be positive"):
        WorldConfig(n_train_ids=0)
    with pytest.raises(ValueError, match="train_cameras <= test_cameras"):
        WorldConfig(train_cameras=8, test_cameras=6)
    with pytest.raises(ValueError, match="unknown world profile"):
        build_world("gigantic")


def test_oracle_renderer_shows_true_identities_in_any_pose(person_renderer, smoke_world, jpeg_pixels):
    from posedive_lib.body.poses import ExternalPoseLibrary
    from posedive_lib.data.synthetic.world import OracleRenderer, pose_sources

    config = smoke_world.config
    oracle = OracleRenderer(config, renderer=PersonRenderer(config.width, config.height, config.supersample,
                                                            body=person_renderer.body))
    spec = next(s for s in plan_shots(config) if s.set == "train")  # a training image of the world, as planned
    pose = pose_sources(config.seed)[spec.pose_source][spec.pose_index]
    stored = jpeg_pixels(smoke_world.root / spec.path)
    drawn = {pid: jpeg_pixels(oracle.render([pid], [pose], spec.elevation, spec.azimuth, spec.camid, spec.seed).images[0])
             for pid in (spec.pid, spec.pid + 1)}
    np.testing.assert_array_equal(drawn[spec.pid], stored)  # the world's own image of that person
    assert np.abs(drawn[spec.pid + 1] - stored).mean() > 5  # another identity in the same shot is not
    poses = ExternalPoseLibrary(seed=9).sample(3, np.random.default_rng(0))
    out = oracle.render([1, 2, 3], poses, 20.0, np.array([30.0, 150.0, 270.0]), camid=2)
    assert out.images.shape == (3, 128, 64, 3)
    again = oracle.render([1, 2, 3], poses, 20.0, np.array([30.0, 150.0, 270.0]), camid=2)
    np.testing.assert_array_equal(out.images, again.images)  # deterministic from the seed
    with pytest.raises(ValueError, match="one pose per identity"):
        oracle.render([1, 2], poses, 20.0, 0.0)
    with pytest.raises(ValueError, match="not in this world's network"):
        oracle.render([1], poses[:1], 20.0, 0.0, camid=99)
    with pytest.raises(ValueError, match="no shots"):
        person_renderer.render([])
