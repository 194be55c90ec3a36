"""One ``accelerate.Accelerator`` per training run, its mixed precision resolved for that run.

``accelerate`` keeps one shared state per process and refuses a second ``Accelerator`` with another
mixed precision. The CLI and the notebooks train the generator (bf16 on a GPU) and then Re-ID models
(fp16 on a GPU) in one process, so a run that asks for another precision starts a fresh accelerator state.
"""
from __future__ import annotations


def make_accelerator(mixed_precision: str, gpu_default: str):
    """An ``Accelerator``; ``mixed_precision`` "auto" means ``gpu_default`` on a GPU and "no" on a CPU."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    if mixed_precision == "auto":
        mixed_precision = gpu_default if torch.cuda.is_available() else "no"
    if AcceleratorState._shared_state.get("_mixed_precision", mixed_precision) != mixed_precision:
        AcceleratorState._reset_state()  # one run at a time: the previous run's accelerator is finished
    return Accelerator(mixed_precision=mixed_precision)
