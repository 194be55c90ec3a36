"""Condition maps of synthetic-world shots alone versus rendered along with the images (one process).

``world_conditions`` (the generator's training maps) renders only the body's depth, normal and skeleton;
before, it rendered every image as well and dropped it. Both paths run on the same shots, alternating, and
the medians over repeats are compared. Run: ``python benchmarks/world_conditions_speedup.py``
(writes results/benchmarks/world_conditions_speedup.json).
"""
from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import numpy as np

    from posedive_lib.benchmarking import write_benchmark
    from posedive_lib.body.poses import GaitPoses
    from posedive_lib.data.synthetic.appearance import sample_identity
    from posedive_lib.data.synthetic.person_renderer import PersonRenderer, Shot, STUDIO

    rng = np.random.default_rng(0)
    gait = GaitPoses(0)
    shots = [Shot(sample_identity(i, rng), gait[i % len(gait)], float(rng.uniform(0, 30)), float(rng.uniform(0, 360)),
                  STUDIO, i) for i in range(args.shots)]
    renderer = PersonRenderer()
    paths = {"with_images": lambda s: renderer.render(s, conditions=True).conditions,
             "maps_only": renderer.render_conditions}
    seconds = {name: [] for name in paths}
    for name, render in paths.items():  # warm-up: kernels and ray-casting structures
        render(shots[:args.batch])
    for _ in range(args.repeats):
        for name, render in paths.items():
            start = time.perf_counter()
            for first in range(0, len(shots), args.batch):
                render(shots[first:first + args.batch])
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    speedup = median["with_images"] / median["maps_only"]
    path = write_benchmark("world_conditions_speedup", speedup, "x (maps alone vs maps rendered with images)", True, {
        "shots": args.shots, "batch": args.batch, "repeats": args.repeats,
        "median_seconds": {k: round(v, 3) for k, v in median.items()},
        "maps_per_s": {k: round(args.shots / v, 1) for k, v in median.items()},
        "size": [renderer.height, renderer.width], "threads": "torch default",
    })
    print(f"{speedup:.2f}x: {median['with_images']:.2f} s with images, {median['maps_only']:.2f} s maps only "
          f"for {args.shots} shots -> {path}")


if __name__ == "__main__":
    main()
