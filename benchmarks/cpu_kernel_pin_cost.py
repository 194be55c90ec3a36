"""Cost of pinning the CPU kernels (torch's and numpy's) to AVX2, against the machine's own.

Two workloads of the quick profile, each in a fresh process (the kernel choice is fixed at torch's first
operation), pinned and native alternated in one run, median of ``--repeats``: tiny Re-ID training
iterations (batch 64 of 128 x 64, one thread, as the experiments run them) and one tiny-generator sampling
batch (8 images, 10 DDIM steps, guidance 3.5, all cores). On a CPU without AVX-512 both are the same kernels.
Writes results/benchmarks/cpu_kernel_pin_cost.json (value: pinned / native time of the Re-ID iterations).
Run: ``python benchmarks/cpu_kernel_pin_cost.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

WORKLOAD = """
import json, sys, time
import posedive_lib  # pins the kernels unless POSEDIVE_CPU_KERNELS=native
import torch
import torch.nn.functional as F
from posedive_lib.generator.pipeline import PoseDivePipeline
from posedive_lib.generator.sizes import tiny_generator
from posedive_lib.reid.model import ReIDModel

iterations = int(sys.argv[1])
torch.manual_seed(0)
threads = torch.get_num_threads()
torch.set_num_threads(1)
model = ReIDModel(16, "tiny").to(memory_format=torch.channels_last)
optimizer = torch.optim.Adam(model.parameters(), 1e-3)
images = torch.randn(64, 3, 128, 64).contiguous(memory_format=torch.channels_last)
labels = torch.arange(64) % 16

def step():
    feature, logits = model(images)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

for _ in range(3):
    step()
start = time.perf_counter()
for _ in range(iterations):
    step()
reid = (time.perf_counter() - start) / iterations
torch.set_num_threads(threads)
generator = tiny_generator().eval()
pipe = PoseDivePipeline(generator)
height, width = generator.image_size
references = torch.rand(8, 3, height, width) * 2 - 1
conditions = torch.rand(8, 7, height, width)
pipe(references, conditions, 2, 3.5, seed=0, batch_size=8)
start = time.perf_counter()
pipe(references, conditions, 10, 3.5, seed=0, batch_size=8)
sample = time.perf_counter() - start
print(json.dumps({"kernels": torch.backends.cpu.get_cpu_capability(), "reid_s_per_iteration": reid,
                  "sample_s_per_batch": sample}))
"""


def measure(native: bool, iterations: int) -> dict:
    from posedive_lib.cpu_kernels import OPT_OUT, PINNED_ENVIRONMENT

    env = {name: value for name, value in os.environ.items() if name not in PINNED_ENVIRONMENT}
    env[OPT_OUT] = "native" if native else "avx2"
    out = subprocess.run([sys.executable, "-c", WORKLOAD, str(iterations)], env=env, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from posedive_lib.benchmarking import write_benchmark

    runs = {"pinned": [], "native": []}
    for _ in range(args.repeats):
        for kind in runs:
            runs[kind].append(measure(kind == "native", args.iterations))
    median = {kind: {key: statistics.median(r[key] for r in rows) for key in ("reid_s_per_iteration", "sample_s_per_batch")}
              for kind, rows in runs.items()}
    reid_ratio = median["pinned"]["reid_s_per_iteration"] / median["native"]["reid_s_per_iteration"]
    sample_ratio = median["pinned"]["sample_s_per_batch"] / median["native"]["sample_s_per_batch"]
    details = {"kernels": {kind: rows[0]["kernels"] for kind, rows in runs.items()},
               "reid_iterations": args.iterations, "repeats": args.repeats,
               "median_seconds": {kind: {k: round(v, 4) for k, v in m.items()} for kind, m in median.items()},
               "sample_time_ratio": round(sample_ratio, 3),
               "all_seconds": {kind: [{k: round(v, 4) for k, v in r.items() if k != "kernels"} for r in rows]
                               for kind, rows in runs.items()}}
    path = write_benchmark("cpu_kernel_pin_cost", reid_ratio, "x (Re-ID iteration time, AVX2-pinned / native kernels)",
                           False, details)
    print(f"pinned / native: Re-ID iteration {reid_ratio:.2f}x, generator sampling {sample_ratio:.2f}x "
          f"({details['kernels']['native']} native); wrote {path}")


if __name__ == "__main__":
    main()
