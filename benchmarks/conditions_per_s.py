"""Condition maps per second: depth + normal + skeleton at 192x384, Anny, batches of 16, all cores.

One worker process per core renders external-library poses under uniformly sampled viewpoints;
all workers start together, and the rate is maps rendered / wall time of the slowest worker.
The single-process rate is measured in the same run, so the scaling ratio compares like with like.
Run: ``python benchmarks/conditions_per_s.py`` (writes results/benchmarks/conditions_per_s.json).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time

TARGET = 80.0


def _worker(worker_id, batches, batch, width, height, barrier, queue):
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from posedive_lib.body.anny_body import AnnyBody
    from posedive_lib.body.poses import ExternalPoseLibrary
    from posedive_lib.render.camera import ViewpointSampler
    from posedive_lib.render.pipeline import ConditionRenderer

    renderer = ConditionRenderer(AnnyBody(), width, height)
    library, sampler = ExternalPoseLibrary(seed=worker_id), ViewpointSampler()
    rng = np.random.default_rng(worker_id)

    def one_batch():
        poses = library.sample(batch, rng)
        elevation, azimuth = sampler.sample(batch, rng)
        maps = renderer.render(poses, elevation, azimuth)
        assert maps.depth.shape == (batch, height, width)

    one_batch()  # warm-up: kernel loading, BVH slots
    while True:
        rounds = barrier.wait_for_round()
        if rounds is None:
            return
        start = time.time()
        for _ in range(batches):
            one_batch()
        queue.put((worker_id, start, time.time()))


class _Rounds:
    """Starts every worker's timed round at the same moment."""

    def __init__(self, ctx, workers):
        self.go = ctx.Barrier(workers + 1)
        self.stop = ctx.Event()

    def wait_for_round(self):
        self.go.wait()
        return None if self.stop.is_set() else True


def measure(workers: int, rounds: int, batches: int, batch: int, width: int, height: int) -> list[float]:
    ctx = mp.get_context("spawn")
    sync, queue = _Rounds(ctx, workers), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(i, batches, batch, width, height, sync, queue)) for i in range(workers)]
    for p in procs:
        p.start()
    rates = []
    for _ in range(rounds):
        sync.go.wait()
        spans = [queue.get(timeout=600) for _ in range(workers)]
        wall = max(s[2] for s in spans) - min(s[1] for s in spans)
        rates.append(workers * batches * batch / wall)
    sync.stop.set()
    sync.go.wait()
    for p in procs:
        p.join()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=6, help="batches per worker per round")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--width", type=int, default=192)
    parser.add_argument("--height", type=int, default=384)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    from posedive_lib.benchmarking import write_benchmark

    shape = dict(rounds=args.rounds, batches=args.batches, batch=args.batch, width=args.width, height=args.height)
    single = measure(1, **shape)
    parallel = measure(args.workers, **shape)
    value = statistics.median(parallel)
    path = write_benchmark("conditions_per_s", value, "condition maps/s (depth+normal+skeleton)", True, {
        "width": args.width, "height": args.height, "batch": args.batch, "body_model": "anny",
        "poses": "external library", "workers": args.workers, "rounds": args.rounds,
        "maps_per_round": args.workers * args.batches * args.batch,
        "rates_all_workers": [round(r, 2) for r in parallel], "rates_one_worker": [round(r, 2) for r in single],
        "median_one_worker": round(statistics.median(single), 2),
        "scaling_ratio": round(value / statistics.median(single), 3),
        "target": TARGET, "meets_target": value >= TARGET,
    })
    print(f"{value:.1f} condition maps/s with {args.workers} workers "
          f"({statistics.median(single):.1f}/s with one; target {TARGET:.0f}) -> {path}")


if __name__ == "__main__":
    main()
