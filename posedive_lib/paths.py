"""Project folders: the git-ignored cache (Anny data, warp kernels), the results and the committed weights."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The committed stage-1 weights of the tiny generator (6,000 steps), relative to the project root so that cache
# keys name no machine. Rebuilt by ``python -m posedive_lib.cli generator --profile quick --export-stage1`` (the
# first 2,000 steps), then ``python -m posedive_lib.cli stage1-length --profile quick --export-stage1`` (4,000 more).
STAGE1_WEIGHTS = "models/tiny-stage1"


def cache_dir() -> Path:
    """Project cache folder (``$POSEDIVE_CACHE`` or ``<project>/.cache``), created on demand."""
    path = Path(os.environ.get("POSEDIVE_CACHE", PROJECT_ROOT / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden sibling path to write to; it replaces ``path`` only if the block succeeds.

    The temporary name keeps the suffix, so writers that infer the format from it still work.
    No half-written file is ever left at ``path``, nor the parent folders created for it when the
    block fails. The block may also create a folder at the temporary path (for ``save_pretrained``);
    it then replaces a folder at ``path``.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with parent_folders(path):
        if tmp.is_dir():  # left by a killed run
            shutil.rmtree(tmp)
        try:
            yield tmp
            if tmp.is_dir() and path.is_dir():
                shutil.rmtree(path)
            os.replace(tmp, path)
        finally:
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink(missing_ok=True)


@contextmanager
def parent_folders(path: str | os.PathLike) -> Iterator[None]:
    """Create the folders above ``path``; if the block fails, remove again those it created (while empty)."""
    parent = Path(path).parent
    created = [folder for folder in (parent, *parent.parents) if not folder.exists()]  # deepest first
    parent.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        for folder in created:
            try:
                folder.rmdir()  # only while empty: never removes what others wrote there meanwhile
            except OSError:
                break
        raise


def config_key(config, extra=None, length: int = 10) -> str:
    """Short stable hash of a dataclass config (plus ``extra``), for naming cached outputs."""
    from dataclasses import asdict

    payload = json.dumps({"config": asdict(config), "extra": extra}, sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:length]


def results_dir() -> Path:
    return PROJECT_ROOT / "results"


def configure_caches() -> Path:
    """Point Anny's and warp's caches into the project cache (call before building models)."""
    root = cache_dir()
    os.environ.setdefault("ANNY_CACHE_DIR", str(root / "anny"))
    import anny.paths
    import warp as wp

    anny.paths.set_anny_cache_path(os.environ["ANNY_CACHE_DIR"])
    if wp.config.kernel_cache_dir is None:
        wp.config.kernel_cache_dir = str(root / "warp")
    wp.config.log_level = max(wp.config.log_level, logging.WARNING)  # no banner on every run
    return root


def trim_anny_cache() -> list[Path]:
    """Delete Anny's intermediate cache files; only ``build_compact_model_data_*`` is needed to reload.

    The first build writes about 790 MB; after trimming about 50 MB remain. Returns the removed files.
    """
    anny_cache = Path(os.environ.get("ANNY_CACHE_DIR", cache_dir() / "anny"))
    compact = list(anny_cache.glob("v*/build_compact_model_data_*.safetensors"))
    if not compact:
        return []
    removed = []
    for path in anny_cache.glob("v*/*.safetensors"):
        if not path.name.startswith("build_compact_model_data_"):
            path.unlink()
            removed.append(path)
    return removed
