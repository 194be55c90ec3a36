"""Resumable training state shared by the Re-ID and generator trainers (``accelerate`` checkpoints)."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path


def save_training_state(accelerator, state_dir: Path, step: int, extra: dict | None = None) -> None:
    """Save the full training state atomically: write beside, then swap folders.

    ``extra`` maps file names to objects saved with ``torch.save`` next to accelerate's files (e.g. EMA weights).
    """
    import torch

    tmp = state_dir.with_name(state_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    accelerator.save_state(str(tmp), safe_serialization=True)
    if accelerator.is_main_process:
        for name, value in (extra or {}).items():
            torch.save(value, tmp / name)
        (tmp / "progress.json").write_text(json.dumps({"step": step, "mixed_precision": accelerator.mixed_precision}))
        shutil.rmtree(state_dir, ignore_errors=True)
        os.replace(tmp, state_dir)


def saved_step(state_dir: Path) -> int | None:
    """The step of a saved state, or None when there is none to resume from."""
    progress = state_dir / "progress.json"
    return json.loads(progress.read_text())["step"] if progress.is_file() else None


def resume_precision(state_dir: Path, asked: str) -> str:
    """The mixed precision of a run: that of its saved state when it resumes (whose optimizer and gradient-scaler
    state were saved in it, e.g. bf16 on one GPU and "auto" fp16 on an older one), else ``asked``."""
    import torch

    progress = state_dir / "progress.json"
    saved = json.loads(progress.read_text()).get("mixed_precision") if progress.is_file() else None
    if saved == "fp16" and not torch.cuda.is_available():
        raise ValueError(f"{state_dir} holds a run begun in fp16 on a GPU, and a run resumes in the precision it began "
                         f"in: resume it on a GPU, or delete {state_dir.parent} to start again here")
    return saved or asked


def trim_log(log_path: Path, step: int) -> None:
    """Keep the log rows (a ``step`` column) of the steps up to the checkpoint ``step``: a run killed after writing
    rows but before its checkpoint redoes those steps, and may have cut its last line; a fresh run starts an empty log."""
    import pandas as pd
    from pandas.errors import EmptyDataError, ParserError

    from .paths import atomic_output

    if not log_path.is_file():
        return
    text = log_path.read_text()
    try:
        log = pd.read_csv(log_path) if step and text.strip() else None
    except (EmptyDataError, ParserError):
        log = None
    if log is None:
        log_path.unlink()
        return
    kept = log[log["step"] <= step].dropna()
    if len(kept) < len(log) or not text.endswith("\n"):
        with atomic_output(log_path) as tmp:
            kept.to_csv(tmp, index=False)
