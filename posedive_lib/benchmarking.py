"""Benchmark records: ``results/benchmarks/<name>.json`` with the fields every benchmark shares."""
from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from .paths import atomic_output, results_dir

REQUIRED_FIELDS = ("name", "value", "unit", "higher_is_better", "device", "details")


def device_description() -> str:
    """The CPU model, core count and torch's CPU-kernel set (e.g. AVX2), plus the GPU when torch sees one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"CPU {cpu}, {os.cpu_count()} cores"
    try:
        import torch

        from .cpu_kernels import cpu_kernels

        text += f", {cpu_kernels()} kernels"
        if torch.cuda.is_available():
            text += f"; GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


def write_benchmark(name: str, value: float, unit: str, higher_is_better: bool, details: dict,
                    out_dir: Path | None = None) -> Path:
    """Write one benchmark record atomically and return its path."""
    if not name or "/" in name:
        raise ValueError(f"benchmark name must be a plain file stem, got {name!r}")
    record = {"name": name, "value": float(value), "unit": unit, "higher_is_better": bool(higher_is_better),
              "device": device_description(), "details": details}
    out_dir = Path(out_dir or results_dir() / "benchmarks")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    return path
