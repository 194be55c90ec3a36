"""Export a manifest (real, generated or both) as a Market-1501 folder that any Re-ID code trains on.

The output holds ``bounding_box_train/``, ``query/``, ``bounding_box_test/`` (train, query, gallery) and
``mapping.csv``. Files are named ``PPPP_cCsS_FFFFFF_II.jpg`` as in Market-1501, so torchreid, CLIP-ReID,
SOLIDER-REID and fast-reid read them unchanged:

- ``PPPP``: the pid, zero-padded to 4 digits (more when larger). Market pids must not be negative and
  pid 0 means distractor, so a pid 0 found only in the gallery stays ``0000``; a pid 0 used in train or
  query (MSMT17 lists start at 0) and any negative pid are remapped to new ids above the largest pid.
  Pids are otherwise kept: offset them first if the manifest mixes data sets whose pids collide.
- ``cC``: the camera number (1-based, as the loaders store it). Cameras >= 10 give two digits
  (``c12``); torchreid's Market regex ``([-\\d]+)_c(\\d)`` reads one digit only, so read such exports with
  :func:`~posedive_lib.data.real_datasets.load_market1501` or a ``c(\\d+)`` pattern.
- ``sS``: always ``s1``. ``FFFFFF``: a running number per (pid, camera), unique in the export.
- ``II``: the source, ``00`` real, ``01`` generated, ``02`` oracle, ``03`` extra (real images of another data set).

``mapping.csv`` maps each exported ``file`` (relative to the output folder) back to the manifest's
``path``, ``pid``, ``camid``, ``dataset`` and ``source``, next to ``export_pid``.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Mapping

import pandas as pd

from ..paths import parent_folders
from .manifest import REQUIRED_COLUMNS, SOURCES, ManifestError, validate_manifest
from .real_datasets import MARKET_FOLDERS

JPEG_SUFFIXES = (".jpg", ".jpeg")
MAPPING_FILE = "mapping.csv"
MAPPING_COLUMNS = ("file", "split", "export_pid", "path", "pid", "camid", "dataset", "source")


def export_pids(frame: pd.DataFrame) -> pd.Series:
    """Pids for Market naming: positive pids kept, a gallery-only pid 0 kept, others remapped above the max."""
    pids = frame["pid"]
    zero_is_identity = ((pids == 0) & (frame["split"] != "gallery")).any()
    remapped = sorted(set(pids[pids < 0]) | ({0} if zero_is_identity else set()))
    start = int(max(pids.max(), 0)) + 1
    mapping = {int(old): start + i for i, old in enumerate(remapped)}
    return pids.map(lambda p: mapping.get(int(p), int(p))).astype("int64")


def market_names(frame: pd.DataFrame, pids: pd.Series | None = None) -> list[str]:
    """``PPPP_cCs1_FFFFFF_II.jpg`` file names, in the order of ``frame``'s rows."""
    pids = export_pids(frame) if pids is None else pids
    counts = pd.Series(list(zip(pids, frame["camid"]))).value_counts()
    frame_width = max(6, len(str(int(counts.max())))) if len(counts) else 6
    running: dict[tuple[int, int], int] = defaultdict(int)
    names = []
    for pid, camid, source in zip(pids, frame["camid"], frame["source"]):
        running[pid, camid] += 1
        names.append(f"{int(pid):04d}_c{int(camid)}s1_{running[pid, camid]:0{frame_width}d}_"
                     f"{SOURCES.index(source):02d}.jpg")
    return names


def _validate(frame: pd.DataFrame, root, check_images: bool) -> dict[str, Path]:
    """Validate ``frame`` against its root(s); return the root of each ``dataset`` value."""
    datasets = frame["dataset"].unique() if "dataset" in frame.columns else []
    if isinstance(root, Mapping):
        missing = [d for d in datasets if d not in root]
        if missing:
            raise ValueError(f"no data root given for data set(s) {missing}; pass root={{dataset: folder}} for each")
        roots = {d: Path(root[d]) for d in datasets}
        if frame.empty:
            validate_manifest(frame, name="export")
        for d, group in frame.groupby("dataset"):  # the same relative path may appear under two roots
            validate_manifest(group, roots[d], check_images=check_images, name=f"export ({d})")
    else:
        validate_manifest(frame, root, check_images=check_images, name="export")
        roots = {d: Path(root) for d in datasets}
    cameras = frame["camid"] < 1
    if cameras.any():
        rows, values = frame.index[cameras][:5].tolist(), frame.loc[cameras, "camid"].unique()[:5].tolist()
        raise ManifestError(f"export: Market naming needs camera numbers >= 1 (the loaders store 1-based cameras); "
                            f"rows {rows} have camid {values}")
    return roots


def _check_target(out: Path, roots: dict[str, Path], overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"export target {out} is a file; pass a folder path")
    resolved = out.resolve()
    for root in set(roots.values()):
        if resolved == root.resolve() or resolved in root.resolve().parents:
            raise ValueError(f"export target {out} contains the data root {root}; export into another folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"export target {out} exists and is not empty; pass overwrite=True to replace it")


def _write_image(source: Path, target: Path, link: bool) -> None:
    if source.suffix.lower() not in JPEG_SUFFIXES:
        from PIL import Image

        try:
            with Image.open(source) as image:
                rgb = image.convert("RGB")
        except OSError as error:  # corrupt or not an image (PIL's UnidentifiedImageError is an OSError)
            raise ValueError(f"export: cannot read image {source} ({type(error).__name__}); remove or fix it "
                             "(check_images=True lists every unreadable image before anything is written)") from None
        rgb.save(target, "JPEG", quality=95)  # a full disk is reported as itself
        return
    if link:
        try:
            os.link(source, target)
            return
        except OSError:  # other file system, or links not allowed: copy instead
            pass
    shutil.copyfile(source, target)


def export_market_layout(frame: pd.DataFrame, root: str | os.PathLike | Mapping[str, str | os.PathLike],
                         out: str | os.PathLike, link: bool = False, overwrite: bool = False,
                         check_images: bool = False, extra_files: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Write ``frame``'s images to ``out`` in the Market-1501 layout; return the mapping (also ``mapping.csv``).

    ``root`` is the folder the manifest's paths are relative to, or ``{dataset: folder}`` when real and
    generated images live under different roots. ``link=True`` hard-links JPEGs where the file system
    allows it (editing an exported file then edits the source) and copies otherwise; other formats are
    converted to JPEG. The export is written to a temporary folder next to ``out`` and renamed at the
    end, so an interrupted export leaves no partial ``out``. A non-empty ``out`` is refused unless
    ``overwrite=True``. ``extra_files`` (name -> text) are written into the export with it, e.g. a record of how it
    was made.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(f"export: missing columns {missing}; a manifest needs {list(REQUIRED_COLUMNS)}")
    roots = _validate(frame, root, check_images)
    out = Path(out)
    _check_target(out, roots, overwrite)
    pids = export_pids(frame)
    names = market_names(frame, pids)
    files = [f"{MARKET_FOLDERS[split]}/{name}" for split, name in zip(frame["split"], names)]
    mapping = pd.DataFrame({"file": files, "split": frame["split"].to_numpy(), "export_pid": pids.to_numpy(),
                            "path": frame["path"].to_numpy(), "pid": frame["pid"].to_numpy(),
                            "camid": frame["camid"].to_numpy(), "dataset": frame["dataset"].to_numpy(),
                            "source": frame["source"].to_numpy()}, columns=list(MAPPING_COLUMNS))

    with parent_folders(out):
        _write_export(out, files, frame, roots, mapping, link, extra_files or {})
    return mapping


def _write_export(out: Path, files: list[str], frame: pd.DataFrame, roots: dict, mapping: pd.DataFrame, link: bool,
                  extra_files: Mapping[str, str]) -> None:
    """Write every image and the mapping to a temporary folder next to ``out``, then put it in place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for folder in MARKET_FOLDERS.values():
            (tmp / folder).mkdir()
        for file, path, dataset in zip(files, frame["path"], frame["dataset"]):
            _write_image(roots[dataset] / path, tmp / file, link)
        mapping.to_csv(tmp / MAPPING_FILE, index=False)
        for name, text in extra_files.items():
            (tmp / name).write_text(text)
        if out.is_dir() and any(out.iterdir()):
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            if out.is_dir():
                out.rmdir()
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
