"""Running independent CPU jobs side by side: one process per job slot, a fixed torch thread count in each.

Small models use several cores badly from one process: on two cores a tiny Re-ID run takes 51 s with
two threads and 74 s with one, but two one-thread runs side by side take 78 s (1.3x the throughput of
running them one after the other with two threads). A job that always runs with the same thread count
also gives the same floating-point result on every machine, whatever its number of cores.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence


@contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``threads`` torch intra-op threads (None: leave as is), then restore the count. Setting the
    count at all, even back to what it was, changes the last bits of later torch work in this process (measured: the
    generator's samples), so a caller whose later results must repeat should not enter it with a count."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_workers(threads_per_job: int = 1) -> int:
    """How many jobs of ``threads_per_job`` threads fit on this machine's cores (at least one)."""
    return max(1, (os.cpu_count() or 1) // max(1, threads_per_job))


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_jobs(function: Callable, jobs: Sequence[tuple], workers: int | None = None, threads: int = 1,
             desc: str = "jobs", progress: bool = True) -> Iterator:
    """``function(*job)`` for every job, in order, each with ``threads`` torch threads.

    ``workers`` processes (default: as many as the cores hold) run the jobs side by side; with one worker
    (or one job) they run in this process. ``function`` must be importable (a module-level function).
    """
    from tqdm.auto import tqdm

    workers = min(workers or default_workers(threads), len(jobs)) if jobs else 1
    bar = tqdm(total=len(jobs), desc=desc, unit="job", disable=not progress)
    try:
        if workers <= 1:
            with torch_threads(threads):
                for job in jobs:
                    yield function(*job)
                    bar.update(1)
            return
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(threads,)) as pool:
            pending = [pool.apply_async(function, job) for job in jobs]
            for result in pending:
                yield result.get()
                bar.update(1)
    finally:
        bar.close()

