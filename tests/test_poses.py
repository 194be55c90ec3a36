"""Pose sources: stable ids, determinism, anatomical limits, families, AMASS files."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from posedive_lib.body.joints import SMPL24
from posedive_lib.body.poses import (EXTERNAL_FAMILIES, AmassPoses, ExternalPoseLibrary, GaitPoses, StandingPoses,
                                     _LIMIT_GROUP, _limits_for, euler_pose, stack_poses)


@pytest.mark.parametrize("source_cls", [GaitPoses, StandingPoses, ExternalPoseLibrary])
def test_pose_ids_are_stable_unique_and_reproducible(source_cls):
    a, b, other = source_cls(seed=3, size=200), source_cls(seed=3, size=200), source_cls(seed=4, size=200)
    ids = [p.pose_id for p in a]
    assert len(set(ids)) == len(ids) and all(i.startswith(f"{a.name}:3:") for i in ids)
    np.testing.assert_array_equal(a[17].body_pose, b[17].body_pose)
    assert a[17].pose_id == b[17].pose_id
    assert not np.allclose(a[17].body_pose, other[17].body_pose)
    assert stack_poses(a.sample(5, np.random.default_rng(0))).shape == (5, 24, 3)
    with pytest.raises(IndexError):
        a[200]


def test_external_library_covers_every_family_within_anatomical_limits():
    library = ExternalPoseLibrary(seed=0, size=len(EXTERNAL_FAMILIES) * 20)
    assert {p.family for p in library} == set(EXTERNAL_FAMILIES)
    for pose in library:
        for name in _LIMIT_GROUP:
            j = SMPL24.index(name) - 1
            euler = Rotation.from_rotvec(pose.body_pose[j]).as_euler("xyz", degrees=True)
            # Euler angles are ambiguous: (a, b, c) and (a + 180, 180 - b, c + 180) are the same rotation.
            twin = (np.array([euler[0] + 180, 180 - euler[1], euler[2] + 180]) + 180) % 360 - 180
            lim = _limits_for(name)
            assert any(np.all(e >= lim[:, 0] - 1e-6) and np.all(e <= lim[:, 1] + 1e-6) for e in (euler, twin)), \
                (pose.pose_id, name, euler)
    with pytest.raises(ValueError, match="unknown pose families"):
        ExternalPoseLibrary(families=["moonwalk"])


def test_external_poses_are_more_diverse_than_in_domain_poses():
    def spread(source):
        return stack_poses(list(source)).reshape(len(source), -1).std(0).mean()

    external = spread(ExternalPoseLibrary(seed=0, size=300))
    assert external > 2 * spread(GaitPoses(seed=0, size=300))
    assert external > 2 * spread(StandingPoses(seed=0, size=300))


def test_euler_pose_rejects_unknown_joints_and_clips():
    pose = euler_pose({"left_knee": (400, 0, 0)}, "x", "test")
    knee = Rotation.from_rotvec(pose.body_pose[SMPL24.index("left_knee") - 1]).as_euler("xyz", degrees=True)
    assert knee[0] == pytest.approx(150)
    with pytest.raises(ValueError, match="unknown SMPL body joint"):
        euler_pose({"left_tail": (1, 2, 3)}, "x", "test")


@pytest.mark.parametrize("width", [72, 156])
def test_amass_loader_reads_npz_sequences(tmp_path, width):
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.2, (25, width))
    poses[:, :3] = Rotation.from_euler("xz", [[90, 40]] * 25, degrees=True).as_rotvec()  # Z-up, turned 40 deg
    np.savez(tmp_path / "walk_01.npz", poses=poses, betas=np.zeros(16), trans=np.zeros((25, 3)))
    source = AmassPoses(tmp_path, frame_stride=10)
    assert len(source) == 3 and [p.pose_id for p in source] == [f"amass:walk_01:{f:06d}" for f in (0, 10, 20)]
    pose = source[1]
    np.testing.assert_allclose(pose.body_pose[:21], poses[10, 3:66].reshape(21, 3))
    # Upright in SMPL's Y-up frame, facing +z: heading removed.
    root = Rotation.from_rotvec(pose.global_orient)
    np.testing.assert_allclose(root.apply([0, 0, 1]), [0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(root.apply([0, 1, 0]), [0, 1, 0], atol=1e-9)


def test_amass_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        AmassPoses(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no .npz files"):
        AmassPoses(tmp_path)
    np.savez(tmp_path / "bad.npz", poses=np.zeros((3, 72)))
    with pytest.raises(ValueError, match="missing keys \\['betas', 'trans'\\]"):
        AmassPoses(tmp_path / "bad.npz")
    np.savez(tmp_path / "wide.npz", poses=np.zeros((3, 50)), betas=np.zeros(10), trans=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="72\\|156\\|165"):
        AmassPoses(tmp_path / "wide.npz")


@pytest.mark.parametrize("damage, problem", [
    ("truncated", "not a readable .npz file"),
    ("garbage", "not a readable .npz file"),
    ("npy", "a single .npy array"),
    ("no frames", "empty or holds NaN"),
    ("nan", "empty or holds NaN"),
])
def test_amass_damaged_file_is_named(tmp_path, damage, problem):
    path, full = tmp_path / "seq.npz", tmp_path / "full.npz"
    poses = np.zeros((0 if damage == "no frames" else 3, 72))
    if damage == "nan":
        poses[1, 5] = np.nan
    np.savez(full, poses=poses, betas=np.zeros(10), trans=np.zeros((len(poses), 3)))
    if damage == "truncated":
        path.write_bytes(full.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"\x93NUMPY garbage" * 10)
    elif damage == "npy":
        np.save(tmp_path / "seq.npy", poses)
        (tmp_path / "seq.npy").rename(path)
    else:
        full.rename(path)
    with pytest.raises(ValueError, match=rf"seq\.npz: .*{problem}"):
        AmassPoses(path)


def test_impossible_pose_and_gallery_settings_are_refused():
    from posedive_lib.augment.condition_gallery import GalleryConfig
    from posedive_lib.reid.train import TrainConfig

    for jitter in (-5, float("nan")):
        with pytest.raises(ValueError, match="jitter_deg is a standard deviation"):
            ExternalPoseLibrary(jitter_deg=jitter)
    with pytest.raises(ValueError, match="seed must be non-negative"):
        GaitPoses(seed=-1)
    with pytest.raises(ValueError, match="positive width and height"):
        GalleryConfig(width=-64)
    with pytest.raises(ValueError, match="walk_fraction"):
        GalleryConfig(walk_fraction=2)
    with pytest.raises(ValueError, match="lr and lr_head must be positive"):
        TrainConfig(lr=float("nan"))
