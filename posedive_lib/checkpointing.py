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
        (tmp / "progress.json").write_text(json.dumps({"step": step}))
        shutil.rmtree(state_dir, ignore_errors=True)
        os.replace(tmp, state_dir)


def saved_step(state_dir: Path) -> int | None:
    """The step of a saved state, or None when there is none to resume from."""
    progress = state_dir / "progress.json"
    return json.loads(progress.read_text())["step"] if progress.is_file() else None
