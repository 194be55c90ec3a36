"""Synthetic Re-ID images per second at 64 x 128 (default world settings), all cores, JPEGs written.

Renders a fresh world of about 1,000 images into a temporary folder, once with one worker and once
with one worker per core, timing only the rendering (after every worker has built its renderer).
Run: ``python benchmarks/synth_images_per_s.py`` (writes results/benchmarks/synth_images_per_s.json).
"""
from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import asdict

TARGET = 150.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=24, help="train and test identities each")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--supersample", type=int, default=1)
    args = parser.parse_args()
    from posedive_lib.benchmarking import write_benchmark
    from posedive_lib.data.synthetic.world import WorldConfig, build_world

    config = WorldConfig(n_train_ids=args.ids, n_test_ids=args.ids, n_fashion_ids=args.ids, supersample=args.supersample)
    rates = {}
    for workers in sorted({1, args.workers}):
        with tempfile.TemporaryDirectory() as tmp:
            world = build_world(config, root=tmp, workers=workers, progress=False)
            rates[workers] = world.rendered_images / world.render_seconds
            images = world.rendered_images
    value = rates[args.workers]
    path = write_benchmark("synth_images_per_s", value, "synthetic Re-ID images/s (64x128, JPEG written)", True, {
        "images_per_run": images, "workers": args.workers, "rate_one_worker": round(rates[1], 2),
        "scaling_ratio": round(value / rates[1], 3), "width": config.width, "height": config.height,
        "supersample": config.supersample, "world_config": asdict(config), "target": TARGET,
        "meets_target": value >= TARGET,
        "includes": "pose, Anny body, accessories, ray casting, shading, background, camera look, JPEG write, manifest rows",
    })
    print(f"{value:.1f} images/s with {args.workers} workers ({rates[1]:.1f}/s with one; target {TARGET:.0f}) -> {path}")


if __name__ == "__main__":
    main()
