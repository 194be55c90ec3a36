"""Training runs with different mixed precisions in one process (the generator's bf16, Re-ID's fp16 on a GPU)."""
from __future__ import annotations

import pytest
import torch

from posedive_lib.accelerators import make_accelerator, select_device


def test_runs_with_different_mixed_precisions_share_one_process():
    from accelerate import Accelerator

    assert make_accelerator("bf16", gpu_default="fp16").mixed_precision == "bf16"
    assert make_accelerator("no", gpu_default="bf16").mixed_precision == "no"
    assert make_accelerator("auto", gpu_default="bf16").mixed_precision == ("bf16" if torch.cuda.is_available() else "no")
    with pytest.raises(ValueError, match="already been initialized"):  # accelerate alone refuses the switch
        Accelerator(mixed_precision="fp16" if torch.cuda.is_available() else "bf16")


def test_device_parameter_is_checked_and_cpu_hides_the_gpus(monkeypatch):
    with pytest.raises(ValueError, match="device must be one of"):
        select_device("gpu0")
    if torch.cuda.is_available():
        assert select_device("cuda") == select_device("auto") == "cuda"
        return
    with pytest.raises(RuntimeError, match="sees no CUDA GPU"):
        select_device("cuda")
    assert select_device("auto") == "cpu"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    assert select_device("cpu") == "cpu"
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
