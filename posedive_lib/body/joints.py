"""Joint sets shared by every body model: COCO-17 and the 18-point OpenPose layout.

Every mapping between joint sets is written here once. Body models return COCO-17 joints;
the skeleton drawer converts them to OpenPose-18 (COCO-17 plus a neck) with
:func:`coco17_to_openpose18`.
"""
from __future__ import annotations

import numpy as np

COCO17 = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO17_INDEX = {name: i for i, name in enumerate(COCO17)}

# OpenPose 18-keypoint (COCO) layout as drawn by ControlNet / AnimateAnyone / DWPose.
OPENPOSE18 = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist", "right_hip", "right_knee",
    "right_ankle", "left_hip", "left_knee", "left_ankle", "right_eye",
    "left_eye", "right_ear", "left_ear",
)
# Limbs as pairs of OpenPose-18 indices, in the order whose colours OpenPose uses.
OPENPOSE18_LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
OPENPOSE18_COLORS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0),
    (85, 255, 0), (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255),
    (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255), (170, 0, 255),
    (255, 0, 255), (255, 0, 170), (255, 0, 85),
)

# SMPL's 24 kinematic joints (the order of its pose vector) and their parents.
SMPL24 = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee",
    "spine2", "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot",
    "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)
SMPL24_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
SMPL24_INDEX = {name: i for i, name in enumerate(SMPL24)}

# COCO-17 from SMPL: body joints from SMPL's joint regressor, face points from mesh vertices
# (the vertex ids smplx uses for SMPL/SMPL-H: nose 332, eyes 2800/6260, ears 583/4071).
SMPL_COCO17_SOURCE = {
    "nose": ("vertex", 332), "left_eye": ("vertex", 2800), "right_eye": ("vertex", 6260),
    "left_ear": ("vertex", 583), "right_ear": ("vertex", 4071),
    "left_shoulder": ("joint", 16), "right_shoulder": ("joint", 17),
    "left_elbow": ("joint", 18), "right_elbow": ("joint", 19),
    "left_wrist": ("joint", 20), "right_wrist": ("joint", 21),
    "left_hip": ("joint", 1), "right_hip": ("joint", 2),
    "left_knee": ("joint", 4), "right_knee": ("joint", 5),
    "left_ankle": ("joint", 7), "right_ankle": ("joint", 8),
}

# Anny bones driven by each SMPL joint when an SMPL-convention pose is retargeted to Anny.
SMPL_TO_ANNY_BONE = {
    "pelvis": "root",
    "left_hip": "upperleg01.L", "right_hip": "upperleg01.R",
    "left_knee": "lowerleg01.L", "right_knee": "lowerleg01.R",
    "left_ankle": "foot.L", "right_ankle": "foot.R",
    "spine1": "spine04", "spine2": "spine02", "spine3": "spine01",
    "neck": "neck01", "head": "head",
    "left_collar": "clavicle.L", "right_collar": "clavicle.R",
    "left_shoulder": "upperarm01.L", "right_shoulder": "upperarm01.R",
    "left_elbow": "lowerarm01.L", "right_elbow": "lowerarm01.R",
    "left_wrist": "wrist.L", "right_wrist": "wrist.R",
}


def coco17_to_openpose18(coco: np.ndarray) -> np.ndarray:
    """(..., 17, D) COCO-17 keypoints -> (..., 18, D) OpenPose-18, the neck as mid-shoulder."""
    coco = np.asarray(coco)
    if coco.shape[-2] != 17:
        raise ValueError(f"expected 17 COCO keypoints on axis -2, got shape {coco.shape}")
    neck = 0.5 * (coco[..., COCO17_INDEX["left_shoulder"], :] + coco[..., COCO17_INDEX["right_shoulder"], :])
    index = [COCO17_INDEX[n] if n != "neck" else -1 for n in OPENPOSE18]
    out = coco[..., [i if i >= 0 else 0 for i in index], :].copy()
    out[..., OPENPOSE18.index("neck"), :] = neck
    return out
