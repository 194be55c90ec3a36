"""Training runs with different mixed precisions in one process (the generator's bf16, Re-ID's fp16 on a GPU)."""
from __future__ import annotations

import pytest
import torch

from posedive_lib.accelerators import make_accelerator


def test_runs_with_different_mixed_precisions_share_one_process():
    from accelerate import Accelerator

    assert make_accelerator("bf16", gpu_default="fp16").mixed_precision == "bf16"
    assert make_accelerator("no", gpu_default="bf16").mixed_precision == "no"
    assert make_accelerator("auto", gpu_default="bf16").mixed_precision == ("bf16" if torch.cuda.is_available() else "no")
    with pytest.raises(ValueError, match="already been initialized"):  # accelerate alone refuses the switch
        Accelerator(mixed_precision="fp16" if torch.cuda.is_available() else "bf16")
