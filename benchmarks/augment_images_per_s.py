"""Augmentation throughput: generated images per second, end to end (references read, sampling, JPEG
written, journal appended, then keypoint-confidence filtering statistics with the mediapipe estimator),
for the tiny generator on the quick synthetic world, all cores. Generation and filtering are timed
separately in the same run.

The rate is extrapolated to the paper's 80,000 generated images; the one- and eight-GPU estimates take
the sd15 sampling rate from results/benchmarks/sd15_gpu.json (``benchmarks/sd15_gpu.py``, run on a GPU)
and are null when that file is absent.
Run: ``python benchmarks/augment_images_per_s.py [--generator FOLDER]`` (writes
results/benchmarks/augment_images_per_s.json).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

PAPER_IMAGES = 80_000


def gpu_estimates(sd15_record: Path) -> dict:
    """Hours for the paper's images on one and eight GPUs from the sd15 GPU benchmark's sampling rate (null without it)."""
    if not sd15_record.is_file():
        return {"paper_augmentation_hours_one_gpu_sd15": None, "paper_augmentation_hours_eight_gpus_sd15": None,
                "gpu_note": f"not measured: run benchmarks/sd15_gpu.py on a GPU first (no {sd15_record.name})"}
    record = json.loads(sd15_record.read_text())
    hours = PAPER_IMAGES / record["value"] / 3600
    details = record["details"]
    return {"paper_augmentation_hours_one_gpu_sd15": round(hours, 2), "paper_augmentation_hours_eight_gpus_sd15": round(hours / 8, 2),
            "gpu_note": f"sampling alone at the sd15 GPU rate ({record['value']:.2f} images/s: {details['steps']} DDIM steps, "
                        f"batch {details['batch']}, {details['dtype']}, {record['device']}); eight GPUs assume linear scaling; "
                        "reading, writing and filtering not included"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default=None, help="a saved generator (default: untrained tiny; speed is the same)")
    parser.add_argument("--identities", type=int, default=8)
    parser.add_argument("--per-id", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()

    import torch

    from posedive_lib.augment.condition_gallery import GalleryConfig, build_condition_gallery
    from posedive_lib.augment.filtering import apply_thresholds, keypoint_statistics
    from posedive_lib.augment.generate import AugmentConfig, augment
    from posedive_lib.augment.keypoints import PoseEstimator
    from posedive_lib.benchmarking import write_benchmark
    from posedive_lib.data.synthetic.world import build_world
    from posedive_lib.generator.model import PoseDiveGenerator
    from posedive_lib.generator.sizes import tiny_generator
    from posedive_lib.paths import configure_caches, results_dir

    configure_caches()
    world = build_world("quick", progress=False)
    train = world.subset("train")
    train = train[train["pid"].isin(sorted(train["pid"].unique())[:args.identities])].reset_index(drop=True)
    gallery = build_condition_gallery(GalleryConfig(size=64, width=world.config.width, height=world.config.height),
                                      progress=False)
    generator = (PoseDiveGenerator.from_pretrained(args.generator) if args.generator else tiny_generator()).eval()
    config = AugmentConfig(per_id=args.per_id, steps=args.steps, batch=args.batch)
    # inside the world's folder, so that generated paths and their parents share a root for the filter
    out = Path(tempfile.mkdtemp(prefix=".augment-bench-", dir=world.root))
    estimator = PoseEstimator()
    try:
        start = time.perf_counter()
        manifest = augment(train, world.root, gallery, out, config, generator=generator, progress=False)
        generate_seconds = time.perf_counter() - start
        start = time.perf_counter()
        stats = keypoint_statistics(manifest.assign(path=out.name + "/" + manifest["path"]), world.root, gallery,
                                    estimator, progress=False)
        kept = int(apply_thresholds(stats)["keep"].sum())
        filter_seconds = time.perf_counter() - start
    finally:
        estimator.close()
        shutil.rmtree(out, ignore_errors=True)
    seconds = generate_seconds + filter_seconds
    rate = len(manifest) / seconds
    gpu = gpu_estimates(results_dir() / "benchmarks" / "sd15_gpu.json")
    path = write_benchmark("augment_images_per_s", rate, "generated images/s (tiny generator, end to end, with filtering)", True, {
        "images": len(manifest), "seconds": round(seconds, 2), "generate_seconds": round(generate_seconds, 2),
        "filter_seconds": round(filter_seconds, 2), "generate_only_images_per_s": round(len(manifest) / generate_seconds, 3),
        "kept_at_default_thresholds": kept, "steps": args.steps, "guidance_scale": config.guidance_scale,
        "batch": args.batch, "threads": torch.get_num_threads(), "image_size": list(generator.image_size),
        "generator": args.generator or "untrained tiny (same speed)",
        "paper_images": PAPER_IMAGES, "paper_augmentation_hours_this_device": round(PAPER_IMAGES / rate / 3600, 2),
        **gpu})
    print(f"{rate:.2f} images/s with filtering ({len(manifest)} in {generate_seconds:.1f} s + {filter_seconds:.1f} s): the paper's {PAPER_IMAGES} images would take "
          f"{PAPER_IMAGES / rate / 3600:.1f} h here; wrote {path}")


if __name__ == "__main__":
    main()
