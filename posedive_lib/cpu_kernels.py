"""Pinned CPU kernels, so that a seeded CPU run gives the same bits on the x86-64 machines of one CPU vendor.

Measured so far (``results/kernel-pin-check``): two AMD EPYC machines, one AVX2-only and one with AVX-512, give
the same world, oracle renders, keypoint filter and Re-ID runs on them, while the generator's samples still
differ in the last bits; an Intel Xeon with AVX-512 rounds differently from both, the world included, and none
of 24 settings of ``MKL_CBWR``, ``DNNL_MAX_CPU_ISA`` and ``ATEN_CPU_CAPABILITY`` gave the AMD bits there
(most likely MKL's vendor-specific paths, perhaps oneDNN's too, which these variables do not reach).

The numerical libraries pick their CPU kernels by instruction set, AVX-512 where the CPU has it and AVX2
where it does not, and the two round differently: torch's own kernels (``ATEN_CPU_CAPABILITY``), its oneDNN
convolutions (``DNNL_MAX_CPU_ISA``) and MKL products (``MKL_CBWR``), numpy's OpenBLAS (``OPENBLAS_CORETYPE``)
and its universal functions (``NPY_DISABLE_CPU_FEATURES``); warp's ray caster, compiled for the host, gave the
same condition maps either way. A tiny Re-ID run of the quick profile ends about 1 mAP apart on the two kinds of machine, as
far apart as the effects the experiments measure. Importing :mod:`posedive_lib` pins them all to AVX2, which
every x86-64 CPU of the last decade has, and fixes their thread count at two (the cores of the machines that
made the committed results; Re-ID runs use one thread each whatever the machine). Variables already
set are left alone; ``POSEDIVE_CPU_KERNELS=native`` keeps each library's own choice. The variables are read
when torch runs its first operation and when numpy is imported, so import posedive_lib first (or export them).
"""
from __future__ import annotations

import os
import platform
import sys
import warnings
from typing import MutableMapping

PINNED_ENVIRONMENT = {
    "ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    # torch and OpenBLAS split a product or a reduction among their threads, so the thread count changes the
    # bits too (the generator's samples differ with 1, 2, 3 and 4 threads): two, the reference machines' cores
    "OMP_NUM_THREADS": "2",
}
OPT_OUT = "POSEDIVE_CPU_KERNELS"  # "native": do not pin


def pinning(environ: MutableMapping[str, str] = os.environ, machine: str | None = None) -> bool:
    """Whether the kernels are to be pinned: on x86-64 unless ``POSEDIVE_CPU_KERNELS=native``."""
    choice = environ.get(OPT_OUT, "avx2").lower()
    if choice not in ("avx2", "native"):
        raise ValueError(f"{OPT_OUT}={environ[OPT_OUT]!r} is not understood; use avx2 (the default) or native")
    return choice == "avx2" and (machine or platform.machine()).lower() in ("x86_64", "amd64")


def pin_cpu_kernels(environ: MutableMapping[str, str] = os.environ, machine: str | None = None) -> dict:
    """Set the AVX2 kernel variables that are not set yet; return the ones it set."""
    if not pinning(environ, machine):
        return {}
    added = {name: value for name, value in PINNED_ENVIRONMENT.items() if name not in environ}
    environ.update(added)
    if environ is os.environ and "numpy" in sys.modules and {"OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES"} & set(added):
        warnings.warn("numpy was imported before posedive_lib, so its kernels are the machine's own: import "
                      "posedive_lib first for results that repeat across machines", RuntimeWarning, stacklevel=3)
    return added


def cpu_kernels() -> str:
    """The instruction set of torch's CPU kernels in this process, e.g. ``AVX2``."""
    import torch

    return torch.backends.cpu.get_cpu_capability()
