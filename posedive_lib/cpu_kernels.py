"""Pinned CPU kernels, so that a seeded CPU run gives the same bits on every x86-64 machine.

torch picks its CPU kernels by instruction set: ATen's own (``ATEN_CPU_CAPABILITY``), oneDNN's convolutions
(``DNNL_MAX_CPU_ISA``) and MKL's matrix products (``MKL_CBWR``) each use AVX-512 where the CPU has it and
AVX2 where it does not, and the two round differently. A tiny Re-ID run of the quick profile ends about
1 mAP apart on the two kinds of machine, as far apart as the effects the experiments measure. Importing
:mod:`posedive_lib` pins all three to AVX2, which every x86-64 CPU of the last decade has (the pin changes
nothing on a machine without AVX-512, and cost this AVX-512 machine about 5% on a Re-ID run). Variables
already set are left alone; ``POSEDIVE_CPU_KERNELS=native`` keeps the machine's own kernels.
"""
from __future__ import annotations

import os
import platform
from typing import MutableMapping

AVX2_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}
OPT_OUT = "POSEDIVE_CPU_KERNELS"  # "native": do not pin


def pin_cpu_kernels(environ: MutableMapping[str, str] = os.environ, machine: str | None = None) -> dict:
    """Set the AVX2 kernel variables that are not set yet (x86-64 only; they must precede torch's first
    operation); return the ones it set."""
    choice = environ.get(OPT_OUT, "avx2").lower()
    if choice not in ("avx2", "native"):
        raise ValueError(f"{OPT_OUT}={environ[OPT_OUT]!r} is not understood; use avx2 (the default) or native")
    if choice == "native" or (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return {}
    added = {name: value for name, value in AVX2_KERNELS.items() if name not in environ}
    environ.update(added)
    return added


def cpu_kernels() -> str:
    """The instruction set of torch's CPU kernels in this process, e.g. ``AVX2``."""
    import torch

    return torch.backends.cpu.get_cpu_capability()
