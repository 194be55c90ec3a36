"""How well the keypoint annotator recovers viewpoints, on the synthetic world where the truth is known.

mediapipe's 2D keypoints and 3D landmarks (see posedive_lib/augment/keypoints.py) give each image a
body azimuth and elevation; real data sets are annotated this way before the bias analysis and the
MSMT17-S splits. Median absolute errors against the rendered truth, per set (train: biased front/back
views; test: any azimuth, elevation 0-30) and overall, plus the detection rate and the time per image.
Run: ``python benchmarks/keypoint_viewpoint_error.py`` (writes results/benchmarks/keypoint_viewpoint_error.json).
"""
from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-set", type=int, default=200)
    args = parser.parse_args()

    import numpy as np
    import pandas as pd

    from posedive_lib.augment.keypoints import PoseEstimator, annotate_manifest
    from posedive_lib.benchmarking import write_benchmark
    from posedive_lib.data.synthetic.world import build_world
    from posedive_lib.paths import configure_caches
    from posedive_lib.render.viewpoint import angular_difference

    configure_caches()
    world = build_world("quick", progress=False)
    rows = pd.concat([world.subset(s).sample(n=args.per_set, random_state=0) for s in ("train", "test")], ignore_index=True)
    estimator = PoseEstimator()
    start = time.perf_counter()
    annotated = annotate_manifest(rows, world.root, estimator, progress=False)
    seconds = time.perf_counter() - start
    found = annotated["kp_found"].to_numpy(bool)
    az_error = np.abs(angular_difference(annotated["azimuth"], rows["azimuth"]))
    el_error = np.abs(annotated["elevation"] - rows["elevation"])
    per_set = {}
    for name in ("train", "test"):
        mask = found & (rows["set"] == name).to_numpy()
        per_set[name] = {"detected": round(float(found[(rows["set"] == name).to_numpy()].mean()), 3),
                         "median_azimuth_error_deg": round(float(np.median(az_error[mask])), 1),
                         "median_elevation_error_deg": round(float(np.median(el_error[mask])), 1)}
    value = float(np.median(az_error[found]))
    path = write_benchmark("keypoint_viewpoint_error", value, "median absolute azimuth error (degrees)", False, {
        "images": len(rows), "detected": round(float(found.mean()), 3),
        "median_elevation_error_deg": round(float(np.median(el_error[found])), 1),
        "azimuth_within_45deg": round(float((az_error[found] <= 45).mean()), 3), "per_set": per_set,
        "seconds_per_image": round(seconds / len(rows), 4), "estimator": "mediapipe 0.10.21 pose, complexity 1, upscaled to 256 px"})
    print(f"median azimuth error {value:.1f} deg, elevation {np.median(el_error[found]):.1f} deg, "
          f"detected {found.mean():.0%}; wrote {path}")


if __name__ == "__main__":
    main()
