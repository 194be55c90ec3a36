"""Training runs with different mixed precisions in one process (the generator's bf16, Re-ID's fp16 on a GPU)."""
from __future__ import annotations

import pytest
import torch

from posedive_lib.accelerators import make_accelerator, native_bf16, resolve_precision, select_device


def test_runs_with_different_mixed_precisions_share_one_process():
    from accelerate import Accelerator

    assert make_accelerator("bf16", gpu_default="fp16").mixed_precision == "bf16"
    assert make_accelerator("no", gpu_default="bf16").mixed_precision == "no"
    gpu = "bf16" if native_bf16() else "fp16"
    assert make_accelerator("auto", gpu_default="bf16").mixed_precision == (gpu if torch.cuda.is_available() else "no")
    with pytest.raises(ValueError, match="already been initialized"):  # accelerate alone refuses the switch
        Accelerator(mixed_precision="fp16" if torch.cuda.is_available() else "bf16")


@pytest.mark.parametrize("gpu, native, expected", [(False, False, ("no", "no")), (True, True, ("bf16", "fp16")),
                                                    (True, False, ("fp16", "fp16"))])
def test_auto_precision_avoids_emulated_bf16(monkeypatch, gpu, native, expected):
    """The generator's bf16 on an Ampere or later GPU, fp16 on an older one (it would emulate bf16), none on a CPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native or including_emulation)
    assert (resolve_precision("auto", "bf16"), resolve_precision("auto", "fp16")) == expected
    assert resolve_precision("bf16", "fp16") == "bf16"  # asked for: as asked


def test_a_run_resumes_in_the_precision_it_began_in(tmp_path):
    """Its optimizer and gradient-scaler state were saved in that precision (bf16 has no scaler, fp16 has one)."""
    import json

    from posedive_lib.checkpointing import resume_precision

    state = tmp_path / "run" / "checkpoint"
    assert resume_precision(state, "auto") == "auto"  # nothing saved: as asked
    state.mkdir(parents=True)
    (state / "progress.json").write_text(json.dumps({"step": 4}))  # saved before precisions were recorded
    assert resume_precision(state, "auto") == "auto"
    (state / "progress.json").write_text(json.dumps({"step": 4, "mixed_precision": "bf16"}))
    assert resume_precision(state, "auto") == "bf16"
    (state / "progress.json").write_text(json.dumps({"step": 4, "mixed_precision": "fp16"}))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="begun in fp16 on a GPU, and a run resumes in the precision it began in: resume it on a GPU"):
            resume_precision(state, "auto")
    else:
        assert resume_precision(state, "auto") == "fp16"


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
