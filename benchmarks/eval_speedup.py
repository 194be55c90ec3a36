"""Re-ID evaluation speed: the chunked torch ``evaluate`` against the plain per-query NumPy reference.

Both run on the same seeded random features (10,000 queries x 50,000 gallery, 512 dims, 15
cameras; identities drawn so each query has several true matches in other cameras) in one run.
The reference gets its distance matrix from ``pairwise_distance`` with the same chunking, so both
rank bit-identical distances, and the metrics must agree to 1e-6. The fast version is then
timed alone at full MSMT17 scale (11,659 x 82,161) in a fresh process, for its peak memory.
Run: ``python benchmarks/eval_speedup.py`` (a few minutes: the reference is slow; writes
results/benchmarks/eval_speedup.json); ``--num-query 2000 --num-gallery 10000 --skip-msmt`` is quick.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time

import numpy as np

TARGET = 10.0
THREADS = 2


def make_features(num_query: int, num_gallery: int, dim: int, cameras: int, images_per_id: int, noise: float,
                  seed: int):
    """Identity centres plus Gaussian noise; gallery pids cycle through the identities, queries draw from them."""
    rng = np.random.default_rng(seed)
    num_ids = max(1, num_gallery // images_per_id)
    centres = rng.standard_normal((num_ids, dim), dtype=np.float32)
    g_pids = rng.permutation(np.arange(num_gallery) % num_ids)
    q_pids = rng.integers(0, num_ids, num_query)
    g_feats = rng.standard_normal((num_gallery, dim), dtype=np.float32)
    q_feats = rng.standard_normal((num_query, dim), dtype=np.float32)
    for feats, pids in ((g_feats, g_pids), (q_feats, q_pids)):  # in place: one array per set at a time
        feats *= noise
        feats += centres[pids]
    g_cams, q_cams = rng.integers(0, cameras, num_gallery), rng.integers(0, cameras, num_query)
    return q_feats, g_feats, q_pids + 1, g_pids + 1, q_cams, g_cams  # pids from 1: 0 would mean distractor


def _current_rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mib() -> float:
    """This process's high-water RSS (VmHWM; ru_maxrss would include the parent's size at fork)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _msmt_worker(args: dict, queue) -> None:
    import torch

    torch.set_num_threads(THREADS)
    from posedive_lib.reid.evaluation import evaluate

    data = make_features(args["num_query"], args["num_gallery"], args["dim"], args["cameras"],
                         args["images_per_id"], args["noise"], args["seed"])
    rss_before = _current_rss_mib()
    runs = []
    for _ in range(args["repeats"]):
        start = time.perf_counter()
        metrics = evaluate(*data, metric=args["metric"], memory_budget_mib=args["memory_budget_mib"])
        runs.append(time.perf_counter() - start)
    peak = _peak_rss_mib()
    queue.put({"seconds": statistics.median(runs), "runs": runs, "rss_before_mib": rss_before, "peak_rss_mib": peak,
               "metrics": metrics.as_dict(), "num_valid_queries": metrics.num_valid_queries})


def time_msmt(args: dict) -> dict:
    """Time ``evaluate`` at MSMT17 scale in a fresh process (so its peak RSS is its own), median of repeats."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_msmt_worker, args=(args, queue))
    proc.start()
    result = queue.get(timeout=3600)
    proc.join()
    return result


def working_memory_mib(num_query: int, num_gallery: int, dim: int, memory_budget_mib: float) -> float:
    """Upper estimate of what ``evaluate`` allocates beyond its inputs (float32).

    Normalised features and the transposed gallery, the similarity chunk, and per block the
    distances, the selection mask and the gathered images (bounded by the whole block).
    """
    from posedive_lib.reid.evaluation import _BLOCK_ELEMENTS, _chunk_rows

    rows = _chunk_rows(num_query, num_gallery, 4, None, memory_budget_mib)
    block = max(1, min(rows, _BLOCK_ELEMENTS // num_gallery)) * num_gallery
    features = (num_query + 2 * num_gallery) * dim * 4
    return (features + rows * num_gallery * 4 + block * (4 + 1 + 3 * 8)) / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-query", type=int, default=10_000)
    parser.add_argument("--num-gallery", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--cameras", type=int, default=15)
    parser.add_argument("--images-per-id", type=int, default=10, help="gallery images per identity")
    parser.add_argument("--noise", type=float, default=2.3, help="feature noise relative to identity centres")
    parser.add_argument("--metric", default="cosine", choices=["cosine", "euclidean"])
    parser.add_argument("--memory-budget-mib", type=float, default=256.0)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the fast version (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--msmt-query", type=int, default=11_659)
    parser.add_argument("--msmt-gallery", type=int, default=82_161)
    parser.add_argument("--skip-msmt", action="store_true", help="skip the MSMT17-scale timing")
    parser.add_argument("--no-record", action="store_true", help="print only; do not write the benchmark record")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(THREADS)
    from posedive_lib.benchmarking import write_benchmark
    from posedive_lib.reid.evaluation import _chunk_rows, evaluate, evaluate_reference, pairwise_distance

    data = make_features(args.num_query, args.num_gallery, args.dim, args.cameras, args.images_per_id, args.noise,
                         args.seed)
    q_feats, g_feats, q_pids, g_pids, q_cams, g_cams = data
    fast_times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        fast = evaluate(*data, metric=args.metric, memory_budget_mib=args.memory_budget_mib)
        fast_times.append(time.perf_counter() - start)
    fast_s = statistics.median(fast_times)
    print(f"fast: {fast_s:.2f} s (runs {[round(t, 2) for t in fast_times]}), {fast.as_dict()}")

    start = time.perf_counter()
    dist = pairwise_distance(q_feats, g_feats, args.metric, memory_budget_mib=args.memory_budget_mib).numpy()
    ref_dist_s = time.perf_counter() - start
    start = time.perf_counter()
    ref = evaluate_reference(dist, q_pids, g_pids, q_cams, g_cams)
    ref_rank_s = time.perf_counter() - start
    del dist
    ref_s = ref_dist_s + ref_rank_s
    diff = max(abs(fast.mAP - ref.mAP), float(np.abs(fast.cmc - ref.cmc).max()))
    speedup = ref_s / fast_s
    print(f"reference: {ref_s:.1f} s (distances {ref_dist_s:.1f} s + per-query loop {ref_rank_s:.1f} s); "
          f"speedup {speedup:.1f}x; largest metric difference {diff:.2e}")
    if diff > 1e-6 or fast.num_skipped != ref.num_skipped:
        raise SystemExit(f"fast and reference metrics differ by {diff:.2e} (skipped {fast.num_skipped} vs "
                         f"{ref.num_skipped}): not writing a record")

    details = {
        "num_query": args.num_query, "num_gallery": args.num_gallery, "dim": args.dim, "cameras": args.cameras,
        "metric": args.metric, "images_per_id": args.images_per_id, "noise": args.noise, "seed": args.seed,
        "memory_budget_mib": args.memory_budget_mib,
        "chunk_size": _chunk_rows(args.num_query, args.num_gallery, 4, None, args.memory_budget_mib),
        "fast_seconds_median": round(fast_s, 3), "fast_seconds_runs": [round(t, 3) for t in fast_times],
        "fast_torch_threads": THREADS,
        "reference_seconds": round(ref_s, 3), "reference_distance_seconds": round(ref_dist_s, 3),
        "reference_per_query_loop_seconds": round(ref_rank_s, 3),
        "reference_note": "per-query NumPy loop (stable argsort of each row) once, on a distance matrix from "
                          "pairwise_distance (torch, same chunks, included in its time)",
        "max_abs_metric_difference": diff, "metrics_percent": fast.as_dict(),
        "num_valid_queries": fast.num_valid_queries, "num_skipped": fast.num_skipped,
        "target": TARGET, "meets_target": speedup >= TARGET,
    }
    if not args.skip_msmt:
        msmt_args = {"num_query": args.msmt_query, "num_gallery": args.msmt_gallery, "dim": args.dim,
                     "cameras": args.cameras, "images_per_id": args.images_per_id, "noise": args.noise,
                     "seed": args.seed, "metric": args.metric, "memory_budget_mib": args.memory_budget_mib,
                     "repeats": args.repeats}
        msmt = time_msmt(msmt_args)
        details["msmt17_scale"] = {
            "num_query": args.msmt_query, "num_gallery": args.msmt_gallery,
            "seconds_median": round(msmt["seconds"], 3), "seconds_runs": [round(t, 3) for t in msmt["runs"]],
            "chunk_size": _chunk_rows(args.msmt_query, args.msmt_gallery, 4, None, args.memory_budget_mib),
            "peak_rss_mib": round(msmt["peak_rss_mib"], 1), "rss_before_evaluate_mib": round(msmt["rss_before_mib"], 1),
            "peak_rss_note": "whole worker process (VmHWM), including its input features and their generation",
            "estimated_working_memory_mib": round(working_memory_mib(args.msmt_query, args.msmt_gallery, args.dim,
                                                                     args.memory_budget_mib), 1),
            "full_distance_matrix_mib": round(args.msmt_query * args.msmt_gallery * 4 / 2**20, 1),
            "metrics_percent": msmt["metrics"],
        }
        print(f"MSMT17 scale ({args.msmt_query} x {args.msmt_gallery}): {msmt['seconds']:.2f} s, "
              f"peak RSS {msmt['peak_rss_mib']:.0f} MiB (before evaluate {msmt['rss_before_mib']:.0f} MiB)")
    print(f"{speedup:.1f}x faster than the per-query NumPy reference (target {TARGET:.0f}x)")
    if not args.no_record:
        print(f"-> {write_benchmark('eval_speedup', speedup, 'x faster than per-query NumPy', True, details)}")


if __name__ == "__main__":
    main()
