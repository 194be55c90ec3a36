"""2D keypoints with confidences, and viewpoint estimates, from mediapipe's pose landmarker (offline).

``mediapipe==0.10.21`` ships its pose models (newer releases download them); only
``model_complexity=1`` is bundled. Its 33 landmarks are mapped to COCO-17 once here; a landmark's
confidence is mediapipe's ``visibility``, and an image where no person is found gets zeros. Small Re-ID
crops are upscaled to ``min_height`` before detection. The 3D world landmarks (hip-centred, camera
axes) give each image's body azimuth and elevation with the convention of
:mod:`posedive_lib.render.viewpoint`, so real data sets can be annotated like the synthetic world.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..render.viewpoint import body_viewpoint

# COCO-17 order -> mediapipe landmark index
MEDIAPIPE_TO_COCO17 = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)


class PoseEstimator:
    """``estimate(images)`` -> keypoints (N, 17, 3: u, v in input pixels, confidence) and viewpoints."""

    def __init__(self, min_height: int = 256, min_detection_confidence: float = 0.3):
        try:
            import mediapipe as mp
        except ImportError as error:
            raise ImportError("keypoint filtering needs mediapipe 0.10.21 (the last release that ships its pose "
                              "models): run `make setup`, or pip install --no-deps mediapipe==0.10.21 absl-py "
                              "flatbuffers opencv-contrib-python-headless 'protobuf>=4.25.3,<5'") from error
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                            min_detection_confidence=min_detection_confidence)
        self.min_height = int(min_height)

    def estimate(self, images) -> dict[str, np.ndarray]:
        """``images``: (N, H, W, 3) uint8 RGB. Returns ``keypoints`` (N, 17, 3), ``found`` (N,) and
        ``elevation`` / ``azimuth`` (N,) in degrees (NaN where no person was found)."""
        from PIL import Image

        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be (N, H, W, 3) uint8 RGB, got {images.shape} {images.dtype}")
        n, height, width = images.shape[:3]
        scale = max(1.0, self.min_height / height)
        keypoints = np.zeros((n, 17, 3), np.float32)
        elevation, azimuth = np.full(n, np.nan), np.full(n, np.nan)
        found = np.zeros(n, bool)
        for i, image in enumerate(images):
            if scale > 1:
                image = np.asarray(Image.fromarray(image).resize((round(width * scale), round(height * scale)), Image.BICUBIC))
            result = self._pose.process(image)
            if result.pose_landmarks is None:
                continue
            found[i] = True
            marks = result.pose_landmarks.landmark
            keypoints[i] = [(marks[j].x * width, marks[j].y * height, marks[j].visibility) for j in MEDIAPIPE_TO_COCO17]
            world = result.pose_world_landmarks.landmark
            joints = np.array([[world[j].x, world[j].y, world[j].z] for j in MEDIAPIPE_TO_COCO17])
            elevation[i], azimuth[i] = viewpoint_from_camera_joints(joints)
        return {"keypoints": keypoints, "found": found, "elevation": elevation, "azimuth": azimuth}

    def close(self) -> None:
        self._pose.close()


def estimate_files(estimator, paths, root: str | os.PathLike) -> dict[str, np.ndarray]:
    """``estimator.estimate`` on the image files at ``paths`` under ``root``, of one size or of several (real data
    sets, one at a time then)."""
    from ..data.images import read_rgb

    images = [read_rgb(Path(root) / p) for p in paths]
    if len({image.shape for image in images}) == 1:
        return estimator.estimate(np.stack(images))
    outs = [estimator.estimate(image[None]) for image in images]
    return {key: np.concatenate([out[key] for out in outs]) for key in outs[0]}


def viewpoint_from_camera_joints(joints: np.ndarray, distance: float = 100.0) -> tuple[float, float]:
    """Body elevation and azimuth (degrees) from hip-centred COCO-17 joints in camera axes
    (x right, y down, z away from the camera); the body's vertical is its hips -> shoulders direction."""
    from ..body.joints import COCO17_INDEX as I

    joints = np.asarray(joints, float)
    up = joints[[I["left_shoulder"], I["right_shoulder"]]].mean(0) - joints[[I["left_hip"], I["right_hip"]]].mean(0)
    camera = np.array([[0.0, 0.0, -distance]])
    elevation, azimuth = body_viewpoint(joints[None], camera, up=up)
    return float(elevation[0]), float(azimuth[0])


def annotate_manifest(manifest: pd.DataFrame, root: str | os.PathLike, estimator: PoseEstimator, batch: int = 64,
                      progress: bool = True) -> pd.DataFrame:
    """Fill ``keypoints``, ``azimuth`` and ``elevation`` of a manifest from the estimator (real data sets,
    whose viewpoints and poses are unknown); ``kp_found`` says where a person was detected."""
    from tqdm.auto import tqdm

    from ..data.manifest import encode_keypoints

    keypoints, elevation, azimuth, found = [], [], [], []
    for start in tqdm(range(0, len(manifest), batch), desc="keypoint annotation", disable=not progress):
        out = estimate_files(estimator, manifest["path"].iloc[start:start + batch], root)
        keypoints += encode_keypoints(out["keypoints"])
        elevation += out["elevation"].tolist()
        azimuth += out["azimuth"].tolist()
        found += out["found"].tolist()
    return manifest.assign(keypoints=keypoints, elevation=np.round(elevation, 2), azimuth=np.round(azimuth, 2),
                           kp_found=found)


ANNOTATION_CHUNK = 1024  # images per cache file: an interrupted annotation resumes at the chunk it stopped in
ANNOTATION_COLUMNS = ("keypoints", "elevation", "azimuth", "kp_found")


def annotated(manifest: pd.DataFrame, root: str | os.PathLike, progress: bool = True,
              cache: str | os.PathLike | None = None, chunk: int = ANNOTATION_CHUNK) -> pd.DataFrame:
    """``manifest`` with its images' keypoints, viewpoints and ``kp_found`` (:func:`annotate_manifest`, fresh
    estimator), cached per chunk of ``chunk`` images, keyed by the root and each image's path, size and modification
    time, so a long annotation (MSMT17: about an hour on two CPU cores) resumes where it stopped and a file replaced
    under the same name is annotated again. A split's export (``cli split``) reads the estimates that made the split
    (:func:`~posedive_lib.data.dataset_split.split_annotations`) instead. Returns the rows in ``manifest``'s order with
    a fresh index."""
    import hashlib

    from tqdm.auto import tqdm

    from ..data.dataset_split import split_annotations
    from ..paths import atomic_output, cache_dir

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} not found: pass the data set's root folder")
    estimated = split_annotations(manifest, root)
    if estimated is not None:
        return estimated
    rows = manifest.drop(columns=[c for c in ANNOTATION_COLUMNS if c in manifest]).reset_index(drop=True)
    folder = Path(cache or cache_dir() / "annotations")
    parts, estimator = [], None
    bar = tqdm(total=len(rows), desc="keypoint annotation", unit="img", disable=not progress)
    try:
        for start in range(0, len(rows), chunk):
            paths = rows["path"].iloc[start:start + chunk].astype(str)
            stamps = [(root / p).stat() for p in paths]
            key = "\n".join([str(root.resolve()), *(f"{p} {s.st_size} {s.st_mtime_ns}" for p, s in zip(paths, stamps))])
            path = folder / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.csv"
            if path.is_file():
                part = pd.read_csv(path, dtype={"keypoints": str})
            else:
                estimator = estimator or PoseEstimator()
                part = annotate_manifest(rows.iloc[start:start + chunk][["path"]], root, estimator, progress=False)
                with atomic_output(path) as tmp:
                    part.to_csv(tmp, index=False)
            parts.append(part[list(ANNOTATION_COLUMNS)])
            bar.update(len(paths))
    finally:
        bar.close()
        if estimator is not None:
            estimator.close()
    found = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(ANNOTATION_COLUMNS))
    return pd.concat([rows, found.astype({"kp_found": bool})], axis=1)
