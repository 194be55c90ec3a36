"""Sampling speed of the tiny generator, and the speed-up of reusing the reference U-Net's features.

Batch 16, 64x128 images, DDIM 20 steps, classifier-free guidance 3.5 (conditional and unconditional
branches in one batch), all cores. The same inputs are sampled with the reference U-Net run once per
reference image (the pipeline's default) and re-run at every denoising step; both are timed in
alternation in one run (median of ``--repeats``), and their outputs are compared. The speed-up is also
measured without guidance (scale 1: no unconditional branch, so the denoiser runs a single batch), where the
reference U-Net is a larger share of a step.
Writes results/benchmarks/sample_images_per_s.json and results/benchmarks/reference_cache_speedup.json.
Run: ``python benchmarks/sample_images_per_s.py``. Speed does not depend on the weights, so an
untrained tiny generator is used unless ``--generator`` names a saved one.
"""
from __future__ import annotations

import argparse
import statistics
import time

TARGET_SPEEDUP = 1.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generator", default=None, help="a saved generator folder (default: untrained tiny)")
    args = parser.parse_args()

    import torch

    from posedive_lib.benchmarking import write_benchmark
    from posedive_lib.generator.model import PoseDiveGenerator
    from posedive_lib.generator.pipeline import PoseDivePipeline
    from posedive_lib.generator.sizes import tiny_generator

    generator = (PoseDiveGenerator.from_pretrained(args.generator) if args.generator else tiny_generator()).eval()
    pipe = PoseDivePipeline(generator)
    rng = torch.Generator().manual_seed(0)
    height, width = generator.image_size
    references = torch.rand(args.batch, 3, height, width, generator=rng) * 2 - 1
    conditions = torch.rand(args.batch, 7, height, width, generator=rng)

    def run(reuse: bool, guidance: float):
        start = time.perf_counter()
        out = pipe(references, conditions, args.steps, guidance, seed=0, batch_size=args.batch, reuse_reference=reuse)
        return time.perf_counter() - start, out

    def timed_side_by_side(guidance: float) -> tuple[list[float], list[float], float]:
        cached, recomputed, max_diff = [], [], 0.0
        for _ in range(args.repeats):
            seconds, a = run(True, guidance)
            cached.append(seconds)
            seconds, b = run(False, guidance)
            recomputed.append(seconds)
            max_diff = max(max_diff, float((a - b).abs().max()))
        return cached, recomputed, max_diff

    run(True, 3.5)  # warm-up
    cached, recomputed, max_diff = timed_side_by_side(3.5)
    t_cached, t_recomputed = statistics.median(cached), statistics.median(recomputed)
    cached_1, recomputed_1, max_diff_1 = timed_side_by_side(1.0)
    speedup_1 = statistics.median(recomputed_1) / statistics.median(cached_1)
    rate = args.batch / t_cached
    common = {"batch": args.batch, "steps": args.steps, "guidance_scale": 3.5, "image_size": [height, width],
              "threads": torch.get_num_threads(), "repeats": args.repeats,
              "parameters_millions": round(sum(p.numel() for p in generator.trainable.parameters()) / 1e6, 2)}
    write_benchmark("sample_images_per_s", rate, "generated images/s (tiny generator)", True,
                    {**common, "seconds_per_batch": [round(s, 3) for s in cached],
                     "rate_recomputing_reference": round(args.batch / t_recomputed, 3)})
    path = write_benchmark("reference_cache_speedup", t_recomputed / t_cached, "x (re-run reference U-Net every step / once)",
                           True, {**common, "seconds_cached": [round(s, 3) for s in cached],
                                  "seconds_recomputed": [round(s, 3) for s in recomputed],
                                  "max_abs_output_difference": max_diff, "target": TARGET_SPEEDUP,
                                  "meets_target": t_recomputed / t_cached >= TARGET_SPEEDUP,
                                  "without_guidance": {"speedup": round(speedup_1, 3),
                                                       "seconds_cached": [round(s, 3) for s in cached_1],
                                                       "seconds_recomputed": [round(s, 3) for s in recomputed_1],
                                                       "max_abs_output_difference": max_diff_1}})
    print(f"{rate:.2f} images/s with cached reference features, {args.batch / t_recomputed:.2f} recomputing them: "
          f"{t_recomputed / t_cached:.2f}x (target {TARGET_SPEEDUP}x; {speedup_1:.2f}x without guidance); "
          f"max output difference {max_diff:.1e}; wrote {path}")


if __name__ == "__main__":
    main()
