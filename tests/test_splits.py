"""MSMT17-S-style Cam and Pose splits: disjoint identities, non-overlapping viewpoints and poses, exact rebuild."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from posedive_lib.body.joints import COCO17_INDEX
from posedive_lib.data.manifest import decode_keypoints, encode_keypoints
from posedive_lib.data.splits import apply_split, load_split, make_split, pose_features, save_split
from posedive_lib.render.viewpoint import angular_difference


def _manifest(n_ids=40, per_id=24, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 10, (17, 2)) + np.array([32, 64])
    base[COCO17_INDEX["left_hip"]], base[COCO17_INDEX["right_hip"]] = (36, 70), (28, 70)
    base[COCO17_INDEX["left_shoulder"]], base[COCO17_INDEX["right_shoulder"]] = (40, 40), (24, 40)
    raised = base.copy()
    raised[COCO17_INDEX["left_wrist"]], raised[COCO17_INDEX["right_wrist"]] = (44, 10), (20, 10)
    rows, kps = [], []
    for pid in range(1, n_ids + 1):
        for k in range(per_id):
            template = raised if rng.random() < 0.4 else base
            kps.append(np.concatenate([template + rng.normal(0, 0.8, (17, 2)), np.ones((17, 1))], 1))
            rows.append({"path": f"{pid}_{k}.jpg", "pid": pid, "camid": int(rng.integers(1, 5)), "split": "train",
                         "dataset": "toy", "source": "real", "azimuth": rng.uniform(0, 360)})
    frame = pd.DataFrame(rows)
    frame["keypoints"] = encode_keypoints(np.array(kps))
    return frame


def _check_common(split):
    train, test = split[split.split == "train"], split[split.split != "train"]
    assert not set(train.pid) & set(test.pid)
    q = test[test.split == "query"]
    assert (q.groupby(["pid", "camid"]).size() == 1).all()
    # Every query identity keeps gallery images to be matched against.
    gallery = test[test.split == "gallery"]
    assert set(q.pid) == set(gallery.pid)
    return train, test


def test_cam_split_separates_viewpoints(tmp_path):
    frame = _manifest()
    definition = make_split(frame, "cam", seed=1, half_width=30, gap=15)
    split = apply_split(frame, definition)
    train, test = _check_common(split)
    front_back = lambda az: np.minimum(angular_difference(az, 0), angular_difference(az, 180))
    assert front_back(train.azimuth).max() <= 30 and front_back(test.azimuth).min() >= 45
    assert len(train) > 100 and len(test) > 100
    rebuilt = apply_split(frame, load_split(save_split(definition, tmp_path / "cam.json")))
    pd.testing.assert_frame_equal(rebuilt, split)


def test_pose_split_separates_pose_clusters():
    frame = _manifest()
    definition = make_split(frame, "pose", seed=0, clusters=2, train_cluster_fraction=0.5)
    split = apply_split(frame, definition)
    train, test = _check_common(split)
    wrist_height = lambda f: pose_features(decode_keypoints(f.keypoints))[:, 2 * COCO17_INDEX["left_wrist"] + 1]
    # The two pose families end up on different sides: wrists up only on one side.
    train_up, test_up = (wrist_height(train) < -1.5).mean(), (wrist_height(test) < -1.5).mean()
    assert min(train_up, test_up) < 0.05 and max(train_up, test_up) > 0.95


def test_split_errors():
    frame = _manifest(n_ids=6, per_id=4)
    with pytest.raises(ValueError, match="'cam' or 'pose'"):
        make_split(frame, "colour")
    with pytest.raises(ValueError, match="half_width"):
        make_split(frame, "cam", half_width=80)
    with pytest.raises(ValueError, match="needs \\['azimuth'\\]"):
        apply_split(frame.drop(columns="azimuth"), make_split(frame, "cam"))
    with pytest.raises(ValueError, match="1 identities with test_fraction=0.5 leave no identity for train"):
        make_split(frame[frame.pid == 1], "cam")
    with pytest.raises(ValueError, match="2 identities with test_fraction=0.9 leave no identity for train"):
        make_split(frame[frame.pid <= 2], "cam", test_fraction=0.9)
    assert len(make_split(frame, "cam", test_fraction=0.01)["test_pids"]) == 1  # at least one test identity
    with pytest.raises(ValueError, match="needs a 'pid' column"):
        make_split(frame.drop(columns="pid"), "cam")
    with pytest.raises(ValueError, match="at least one train sector"):
        make_split(frame, "cam", train_sectors=())
    for clusters, fraction in ((1, 0.5), (0, 0.5), (2.5, 0.5), (4, 0.0), (4, 1.5)):
        with pytest.raises(ValueError, match="clusters >= 2 and train_cluster_fraction in \\(0, 1\\)"):
            make_split(frame, "pose", clusters=clusters, train_cluster_fraction=fraction)


@pytest.mark.parametrize("content, problem", [
    (None, "not found"), ("{not json", "not valid JSON"), ('{"kind": "colour"}', "'kind' must be 'cam' or 'pose'"),
    ('[1, 2]', "'kind' must be"), ('{"kind": "pose", "train_pids": [], "test_pids": []}', "without \\['centres'"),
])
def test_load_split_names_a_bad_definition_file(tmp_path, content, problem):
    path = tmp_path / "split.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises((ValueError, FileNotFoundError), match=problem):
        load_split(path)


def test_split_sizes_count_images_and_identities_per_side():
    from posedive_lib.data.splits import split_sizes

    frame = pd.DataFrame({"path": list("abcde"), "pid": [1, 1, 2, 3, 3], "split": ["train"] * 3 + ["query", "gallery"]})
    sizes = split_sizes(frame).set_index("split")
    assert sizes.loc["train"].tolist() == [3, 2] and sizes.loc["query"].tolist() == [1, 1] and len(sizes) == 3
