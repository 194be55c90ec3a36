"""Re-ID runs side by side: one process per core with one torch thread each, against one after the other.

Both ways train and evaluate the same runs (the tiny preset on the quick world's train split, one run per
seed, ``--iterations`` each) in one invocation: first one after the other in this process with all cores'
threads, then side by side (:func:`posedive_lib.reid.experiment.run_settings`, its default on a CPU). The
side-by-side runs are then asked for again: finished, they are only scored, in this process (``rescore_seconds``).
Run: ``python benchmarks/reid_side_by_side_speedup.py`` (about 6 minutes on 2 cores; builds the quick
world first if it is not cached); writes results/benchmarks/reid_side_by_side_speedup.json.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import replace


def timed_runs(train, test, root, runs, seeds, config, workers: int) -> tuple[float, object]:
    from posedive_lib.reid.experiment import run_settings

    start = time.perf_counter()
    rows = run_settings({"train": lambda: train}, test, root, runs, seeds, config, progress=False, workers=workers)
    return time.perf_counter() - start, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=400, help="the quick profile's")
    parser.add_argument("--runs", type=int, default=4, help="runs (seeds) timed each way")
    args = parser.parse_args()

    from posedive_lib.benchmarking import write_benchmark
    from posedive_lib.data.synthetic.world import build_world
    from posedive_lib.paths import configure_caches
    from posedive_lib.processes import default_workers
    from posedive_lib.studies import reid_config

    configure_caches()
    world = build_world("quick", progress=False)
    train, test = world.subset("train"), world.subset("test")
    config = reid_config(train["pid"].nunique(), args.iterations)
    seeds = list(range(args.runs))
    cores = os.cpu_count() or 1
    workers = default_workers(config.threads)
    with tempfile.TemporaryDirectory() as serial_runs, tempfile.TemporaryDirectory() as parallel_runs:
        serial_s, serial = timed_runs(train, test, world.root, serial_runs, seeds, replace(config, threads=cores), 1)
        parallel_s, parallel = timed_runs(train, test, world.root, parallel_runs, seeds, config, workers)
        rescore_s, rescored = timed_runs(train, test, world.root, parallel_runs, seeds, config, workers)
    if not rescored.equals(parallel):
        raise RuntimeError("finished runs scored in this process differ from their scores in the workers")
    speedup = serial_s / parallel_s
    print(f"{args.runs} runs of {args.iterations} iterations: one after the other ({cores} threads) {serial_s:.1f} s, "
          f"side by side ({workers} processes x {config.threads} thread) {parallel_s:.1f} s: {speedup:.2f}x; "
          f"asked again (finished: scored only) {rescore_s:.1f} s")
    details = {
        "runs": args.runs, "iterations": args.iterations, "train_images": len(train), "test_images": len(test),
        "serial_seconds": round(serial_s, 1), "serial_threads": cores,
        "side_by_side_seconds": round(parallel_s, 1), "side_by_side_workers": workers,
        "side_by_side_threads_per_run": config.threads,
        "rescore_seconds": round(rescore_s, 1),
        "mAP_serial": serial["mAP"].tolist(), "mAP_side_by_side": parallel["mAP"].tolist(),
        "note": "times include each run's evaluation on the test split; mAP differs between the two ways only "
                "through the thread count (floating-point order); rescore: the finished side-by-side runs asked for "
                "again, only scored (in this process, same scores)",
    }
    print(f"-> {write_benchmark('reid_side_by_side_speedup', speedup, 'x faster than one run after another', True, details)}")


if __name__ == "__main__":
    main()
