"""Condition maps: encodings, skeleton drawing, and the full Anny -> camera -> maps pipeline."""
from __future__ import annotations

import numpy as np
import pytest

from posedive_lib.body.joints import COCO17_INDEX, OPENPOSE18, OPENPOSE18_COLORS
from posedive_lib.body.poses import ExternalPoseLibrary, GaitPoses, Pose, StandingPoses
from posedive_lib.render.conditions import DEPTH_FLOOR, draw_skeleton, encode_depth, encode_normal
from posedive_lib.render.pipeline import ConditionRenderer
from posedive_lib.render.viewpoint import angular_difference, body_viewpoint

REST = Pose("rest", np.zeros((23, 3)))


def test_depth_encoding_near_is_bright_and_background_is_black():
    depth = np.array([[[2.0, 3.0, 0.0], [2.5, 0.0, 0.0]]])
    mask = depth > 0
    out = encode_depth(depth, mask)
    assert out[0, 0, 0] == 255 and out[0, 0, 1] == round(255 * DEPTH_FLOOR)
    assert out[0, 1, 0] == round(255 * (DEPTH_FLOOR + (1 - DEPTH_FLOOR) * 0.5))
    assert np.all(out[~mask] == 0)
    assert np.all(encode_depth(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), bool)) == 0)  # empty image: no crash


def test_normal_encoding_uses_the_normal_map_convention():
    n = np.array([[[[0, 0, -1.0], [1.0, 0, 0], [0, -1.0, 0], [0, 0, 0]]]])  # toward viewer, right, up
    mask = np.array([[[True, True, True, False]]])
    rgb = encode_normal(n, mask)[0, 0]
    np.testing.assert_array_equal(rgb[0], [128, 128, 255])
    np.testing.assert_array_equal(rgb[1], [255, 128, 128])
    np.testing.assert_array_equal(rgb[2], [128, 255, 128])
    np.testing.assert_array_equal(rgb[3], [0, 0, 0])


def test_skeleton_draws_joints_in_openpose_colours_and_skips_joints_behind_the_camera():
    kp = np.zeros((1, 17, 3))
    kp[0, :, 0] = np.linspace(20, 80, 17)
    kp[0, :, 1] = np.linspace(20, 170, 17)
    kp[0, :, 2] = 3.0
    kp[0, COCO17_INDEX["left_ankle"], 2] = -1.0
    img = draw_skeleton(kp, 100, 200, stick_width=3)[0]
    u, v = kp[0, COCO17_INDEX["right_wrist"], :2].astype(int)
    np.testing.assert_array_equal(img[v, u], OPENPOSE18_COLORS[OPENPOSE18.index("right_wrist")])
    u, v = kp[0, COCO17_INDEX["left_ankle"], :2].astype(int)
    assert not np.array_equal(img[v, u], OPENPOSE18_COLORS[OPENPOSE18.index("left_ankle")])
    with pytest.raises(ValueError, match="image size must be positive"):
        draw_skeleton(kp, 0, 200)


def test_renderer_outputs_consistent_maps(renderer):
    poses = [GaitPoses(seed=0)[3], StandingPoses(seed=0)[1], ExternalPoseLibrary(seed=0)[5]]
    maps = renderer.render(poses, elevation=[0, 15, 30], azimuth=[0, 100, 220])
    B, H, W = 3, renderer.height, renderer.width
    assert maps.depth.shape == (B, H, W) and maps.normal.shape == (B, H, W, 3) and maps.skeleton.shape == (B, H, W, 3)
    assert maps.as_tensor().shape == (B, 7, H, W) and float(maps.as_tensor().max()) <= 1.0
    assert maps.pose_ids == [p.pose_id for p in poses]
    for b in range(B):
        fill = maps.mask[b].mean()
        assert 0.1 < fill < 0.7  # a person framed like a Re-ID crop
        assert np.all((maps.depth[b] > 0) == maps.mask[b]) and np.all((maps.normal[b].max(-1) > 0) == maps.mask[b])
        inside = (maps.keypoints[b, :, 0] >= 0) & (maps.keypoints[b, :, 0] < W) & \
                 (maps.keypoints[b, :, 1] >= 0) & (maps.keypoints[b, :, 1] < H)
        assert inside.all()
        # Most joints project onto the body silhouette (skin keypoints of a solid mesh).
        u, v = maps.keypoints[b, :, 0].astype(int), maps.keypoints[b, :, 1].astype(int)
        assert maps.mask[b, v, u].mean() > 0.75
        assert maps.skeleton[b].any()


def test_front_view_shows_the_left_side_on_the_image_right(renderer):
    front = renderer.render([REST], 0.0, 0.0)
    back = renderer.render([REST], 0.0, 180.0)
    ls, rs = COCO17_INDEX["left_shoulder"], COCO17_INDEX["right_shoulder"]
    assert front.keypoints[0, ls, 0] > front.keypoints[0, rs, 0] + 5
    assert back.keypoints[0, ls, 0] < back.keypoints[0, rs, 0] - 5
    # Front view: the nose is nearer the camera than the shoulders; from behind, farther.
    assert front.keypoints[0, COCO17_INDEX["nose"], 2] < front.keypoints[0, ls, 2]
    assert back.keypoints[0, COCO17_INDEX["nose"], 2] > back.keypoints[0, ls, 2]


def test_high_camera_compresses_the_projected_skeleton_vertically(renderer):
    """The paper's motivating ambiguity: seen from above, the body's vertical extent shrinks."""
    elevations = np.array([0.0, 30.0, 60.0])
    maps = renderer.render([REST] * 3, elevations, 0.0)
    kp = maps.keypoints
    shoulder_width = np.abs(kp[:, COCO17_INDEX["left_shoulder"], 0] - kp[:, COCO17_INDEX["right_shoulder"], 0])
    torso = kp[:, [COCO17_INDEX["left_hip"], COCO17_INDEX["right_hip"]], 1].mean(1) \
        - kp[:, [COCO17_INDEX["left_shoulder"], COCO17_INDEX["right_shoulder"]], 1].mean(1)
    legs = kp[:, [COCO17_INDEX["left_ankle"], COCO17_INDEX["right_ankle"]], 1].mean(1) \
        - kp[:, [COCO17_INDEX["left_hip"], COCO17_INDEX["right_hip"]], 1].mean(1)
    ratio = torso / shoulder_width
    assert ratio[0] > ratio[1] > ratio[2]
    # Roughly a cos(elevation) foreshortening of vertical segments (perspective adds a little).
    assert ratio[2] / ratio[0] < 0.7
    assert np.all(legs / shoulder_width < (legs / shoulder_width)[0] + 1e-6)


@pytest.mark.parametrize("pose", [REST, GaitPoses(seed=1)[7], StandingPoses(seed=2)[4]], ids=["rest", "gait", "standing"])
def test_viewpoint_round_trip(renderer, pose):
    rng = np.random.default_rng(0)
    elevation, azimuth = rng.uniform(0, 30, 6), rng.uniform(0, 360, 6)
    maps = renderer.render([pose] * 6, elevation, azimuth)
    # Torso-measured viewpoint agrees with the commanded one for upright in-domain poses.
    assert angular_difference(maps.azimuth, azimuth).max() < 8.0
    assert np.abs(maps.elevation - elevation).max() < 4.0


def test_viewpoint_of_a_turned_body_is_measured_from_its_torso():
    # A torso facing +X (left along +Y) seen from a camera on the -Y side: the camera is on its right.
    joints = np.zeros((1, 17, 3))
    joints[0, COCO17_INDEX["left_shoulder"]] = [0, 0.2, 1.5]
    joints[0, COCO17_INDEX["right_shoulder"]] = [0, -0.2, 1.5]
    joints[0, COCO17_INDEX["left_hip"]] = [0, 0.1, 1.0]
    joints[0, COCO17_INDEX["right_hip"]] = [0, -0.1, 1.0]
    el, az = body_viewpoint(joints, np.array([[0.0, -5.0, 1.25]]))
    assert az[0] == pytest.approx(270.0) and el[0] == pytest.approx(0.0, abs=1e-9)
    el, az = body_viewpoint(joints, np.array([[5.0, 0.0, 1.25 + 5.0]]))
    assert az[0] == pytest.approx(0.0, abs=1e-9) and el[0] == pytest.approx(45.0)
    with pytest.raises(ValueError, match="\\(B, 17, 3\\)"):
        body_viewpoint(joints[:, :5], np.zeros((1, 3)))


def test_renderer_rejects_bad_input(anny_body):
    with pytest.raises(ValueError, match="image size must be positive"):
        ConditionRenderer(anny_body, width=0, height=128)
    renderer = ConditionRenderer(anny_body, width=32, height=64)
    with pytest.raises(ValueError, match="elevation must lie"):
        renderer.render([REST], 120.0, 0.0)
    with pytest.raises(ValueError, match="empty pose batch"):
        renderer.render([], 10.0, 0.0)


def test_skipping_empty_tiles_loses_no_hits(anny_body):
    from posedive_lib.render.raycast import RayCaster

    poses = ExternalPoseLibrary(seed=5).sample(4, np.random.default_rng(1))
    posed = anny_body(poses)
    renderer = ConditionRenderer(anny_body, width=64, height=128)
    cams = renderer.cameras(posed, np.array([0, 10, 20, 30.0]), np.array([0, 90, 200, 300.0]))
    culled = RayCaster(anny_body.faces, template=anny_body.rest_vertices()).render(posed.vertices, cams)
    full = RayCaster(anny_body.faces, skip_empty_tiles=False).render(posed.vertices, cams)
    np.testing.assert_array_equal(culled.face_id, full.face_id)
    np.testing.assert_allclose(culled.depth, full.depth, atol=1e-5)
