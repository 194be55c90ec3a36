"""One ``accelerate.Accelerator`` per training run, its mixed precision resolved for that run.

``accelerate`` keeps one shared state per process and refuses a second ``Accelerator`` with another
mixed precision. The CLI and the notebooks train the generator (bf16 on a GPU) and then Re-ID models
(fp16 on a GPU) in one process, so a run that asks for another precision starts a fresh accelerator state.
:func:`select_device` applies the notebooks' ``device`` parameter: every run of the process then follows it.
"""
from __future__ import annotations

import os

DEVICES = ("auto", "cpu", "cuda")  # auto: a CUDA GPU when torch sees one, else the CPU


def native_bf16() -> bool:
    """Whether this process's GPU computes bf16 natively (Ampere and later); older GPUs only emulate it, slowly."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_precision(mixed_precision: str, gpu_default: str) -> str:
    """"auto" -> ``gpu_default`` on a GPU ("fp16" instead of a "bf16" the GPU would emulate) and "no" on a CPU;
    any other value as asked."""
    import torch

    if mixed_precision != "auto":
        return mixed_precision
    if not torch.cuda.is_available():
        return "no"
    return "fp16" if gpu_default == "bf16" and not native_bf16() else gpu_default


def make_accelerator(mixed_precision: str, gpu_default: str):
    """An ``Accelerator`` in the precision of :func:`resolve_precision`."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    mixed_precision = resolve_precision(mixed_precision, gpu_default)
    if AcceleratorState._shared_state.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state()  # one run at a time: the previous run's accelerator is finished
    return Accelerator(mixed_precision=mixed_precision)


def check_device(device: str) -> str:
    """``device`` if it is one of :data:`DEVICES`, else a clear error."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return device


def select_device(device: str = "auto") -> str:
    """Make this process's runs use ``device`` ("auto", "cpu" or "cuda"); returns the device they will use.

    "cpu" hides every GPU (``CUDA_VISIBLE_DEVICES=""``), so it must come before anything in the process uses
    CUDA: call it first, as the notebooks' first cell does.
    """
    import torch

    check_device(device)
    if device == "cpu":
        if not torch.cuda.is_initialized():
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        if torch.cuda.is_available():
            raise RuntimeError("device='cpu' came after this process used the GPU: restart it (the kernel) and "
                               "set the device before anything else runs")
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but torch sees no CUDA GPU: install torch's CUDA build on a GPU machine, "
                           "or use device='auto' or 'cpu'")
    return "cuda" if torch.cuda.is_available() else "cpu"
