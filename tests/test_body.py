"""Body models: the shared interface, Anny retargeting, and SMPL loading from a user file."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from posedive_lib.body.base import SMPL_TO_WORLD
from posedive_lib.body.joints import COCO17_INDEX, SMPL24_INDEX, coco17_to_openpose18, OPENPOSE18
from posedive_lib.body.poses import Pose, euler_pose
from posedive_lib.body.smpl_body import SMPLBody, find_smpl_file

REST = Pose("rest", np.zeros((23, 3)))


def _elbow_bent(side: str = "left", degrees: float = -90.0) -> Pose:
    return euler_pose({f"{side}_elbow": (0, degrees, 0)}, "elbow", "test")


# --- Anny -------------------------------------------------------------------------------------

def test_anny_rest_pose_is_upright_facing_front_with_left_on_plus_x(anny_body):
    posed = anny_body([REST])
    j = posed.joints[0].numpy()
    assert posed.vertices.shape[0] == 1 and posed.joints.shape == (1, 17, 3)
    assert j[COCO17_INDEX["nose"], 2] > j[COCO17_INDEX["left_hip"], 2] > j[COCO17_INDEX["left_ankle"], 2]
    assert j[COCO17_INDEX["left_shoulder"], 0] > j[COCO17_INDEX["right_shoulder"], 0]
    # The nose sits in front of the shoulders: the body faces -Y.
    assert j[COCO17_INDEX["nose"], 1] < j[[COCO17_INDEX["left_shoulder"], COCO17_INDEX["right_shoulder"]], 1].mean()
    # SMPL rests in a T-pose: retargeting puts Anny's wrists at shoulder height, arms sideways.
    for side in ("left", "right"):
        wrist, shoulder = j[COCO17_INDEX[f"{side}_wrist"]], j[COCO17_INDEX[f"{side}_shoulder"]]
        assert abs(wrist[2] - shoulder[2]) < 0.08
        assert abs(wrist[0] - shoulder[0]) > 0.4


def test_anny_elbow_flexion_moves_only_that_forearm(anny_body):
    rest, bent = (anny_body([p]).joints[0].numpy() for p in (REST, _elbow_bent("left")))
    moved = np.linalg.norm(bent - rest, axis=1)
    assert moved[COCO17_INDEX["left_wrist"]] > 0.15
    assert moved[[COCO17_INDEX[n] for n in ("right_wrist", "left_hip", "nose", "left_shoulder")]].max() < 1e-4
    # Near-rigid forearm (Anny's keypoints are regressed from the skin, which folds at the elbow);
    # flexing brings the wrist forward (-Y).
    le, lw = COCO17_INDEX["left_elbow"], COCO17_INDEX["left_wrist"]
    assert np.isclose(np.linalg.norm(bent[lw] - bent[le]), np.linalg.norm(rest[lw] - rest[le]), rtol=0.15)
    assert bent[lw, 1] < rest[lw, 1] - 0.1


def test_anny_global_yaw_turns_the_body(anny_body):
    turned = Pose("turned", np.zeros((23, 3)), global_orient=np.array([0.0, np.pi / 2, 0.0]))
    j = anny_body([turned]).joints[0].numpy()
    # SMPL's +90 deg about its y (up) axis turns the front (+z_smpl = -Y world) toward +x_smpl (+X).
    assert j[COCO17_INDEX["nose"], 0] > j[COCO17_INDEX["left_shoulder"], 0] - 0.05
    assert j[COCO17_INDEX["left_shoulder"], 1] > j[COCO17_INDEX["right_shoulder"], 1] + 0.2


def test_anny_shapes_and_bad_phenotypes(anny_body):
    shape = anny_body.random_shape(2, np.random.default_rng(0))
    tall = {k: v[:1] for k, v in shape.items()} | {"height": torch.tensor([0.9])}
    short = {k: v[:1] for k, v in shape.items()} | {"height": torch.tensor([0.2])}
    span = [np.ptp(anny_body([REST], s).vertices[0, :, 2].numpy()) for s in (tall, short)]
    assert span[0] > span[1] + 0.1
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\]"):
        anny_body([REST], {"height": torch.tensor([1.5])})
    with pytest.raises(ValueError, match="unknown Anny phenotypes"):
        anny_body([REST], {"hieght": torch.tensor([0.5])})


def test_openpose18_neck_is_mid_shoulder():
    coco = np.random.default_rng(0).normal(size=(2, 17, 3))
    op = coco17_to_openpose18(coco)
    assert op.shape == (2, 18, 3)
    neck = 0.5 * (coco[:, COCO17_INDEX["left_shoulder"]] + coco[:, COCO17_INDEX["right_shoulder"]])
    np.testing.assert_allclose(op[:, OPENPOSE18.index("neck")], neck)
    np.testing.assert_allclose(op[:, OPENPOSE18.index("right_wrist")], coco[:, COCO17_INDEX["right_wrist"]])
    with pytest.raises(ValueError, match="17 COCO keypoints"):
        coco17_to_openpose18(coco[:, :16])


# --- SMPL ---------------------------------------------------------------------------------------

def test_smpl_loads_fabricated_file_and_maps_joints_to_world(smpl_file):
    path, chain = smpl_file
    body = SMPLBody(path)
    posed = body([REST, REST])
    assert posed.vertices.shape == (2, 6890, 3) and posed.faces.shape == (13776, 3)
    world = chain @ SMPL_TO_WORLD.numpy().T
    j = posed.joints[0].numpy()
    for coco_name, smpl_name in (("left_wrist", "left_wrist"), ("right_knee", "right_knee"), ("left_hip", "left_hip")):
        np.testing.assert_allclose(j[COCO17_INDEX[coco_name]], world[SMPL24_INDEX[smpl_name]], atol=1e-5)
    # Face keypoints come from mesh vertices (nose = vertex 332).
    np.testing.assert_allclose(j[COCO17_INDEX["nose"]], posed.vertices[0, 332].numpy(), atol=1e-6)


def test_smpl_elbow_flexion_is_rigid_about_the_elbow(smpl_file):
    path, _ = smpl_file
    body = SMPLBody(path)
    rest, bent = body([REST, _elbow_bent("left", -90)]).joints.numpy()
    le, lw = COCO17_INDEX["left_elbow"], COCO17_INDEX["left_wrist"]
    np.testing.assert_allclose(bent[le], rest[le], atol=1e-5)
    assert np.isclose(np.linalg.norm(bent[lw] - bent[le]), 0.25, atol=1e-4)
    assert np.linalg.norm(bent[lw] - rest[lw]) > 0.3  # 90 deg turn of a 0.25 m forearm: 0.354 m
    # Flexion brings the forearm forward, which is -Y in world axes.
    assert bent[lw, 1] < rest[lw, 1] - 0.2


def test_smpl_folder_lookup_and_environment_variable(smpl_file, monkeypatch):
    path, _ = smpl_file
    assert find_smpl_file(path.parent) == path
    monkeypatch.setenv("POSEDIVE_SMPL_PATH", str(path.parent))
    assert SMPLBody().model_file == path


def test_smpl_missing_file_says_where_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("POSEDIVE_SMPL_PATH", raising=False)
    with pytest.raises(FileNotFoundError, match="smpl.is.tue.mpg.de.*model_path"):
        SMPLBody()
    with pytest.raises(FileNotFoundError, match="does not exist.*model_path"):
        SMPLBody(tmp_path / "nowhere.pkl")
    with pytest.raises(FileNotFoundError, match="no neutral SMPL model file"):
        SMPLBody(tmp_path)
    with pytest.raises(ValueError, match="SMPL gender must be one of"):
        SMPLBody(tmp_path, gender="other")


def test_smpl_file_of_another_gender_is_refused(tmp_path):
    female = tmp_path / "basicmodel_f_lbs_10_207_0_v1.1.0.pkl"
    female.write_bytes(b"never read")
    with pytest.raises(ValueError, match="is the female SMPL model but gender='male'.*gender='female'"):
        SMPLBody(female, gender="male")
    neutral = tmp_path / "SMPL_NEUTRAL.pkl"
    neutral.write_bytes(b"never read")
    with pytest.raises(ValueError, match="is the neutral SMPL model but gender='female'"):
        find_smpl_file(neutral, gender="female")
    assert find_smpl_file(female, gender="female") == female
    assert find_smpl_file(female) == female  # no gender asked: the file as it is
    renamed = tmp_path / "my_smpl.pkl"
    renamed.write_bytes(b"x")
    assert find_smpl_file(renamed, gender="male") == renamed  # no gender in the name: the caller's word


def test_smpl_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "SMPL_NEUTRAL.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="cannot load SMPL model"):
        SMPLBody(bad)
