"""One manifest format for every image the pipeline touches (real, generated, oracle).

A manifest is a table (CSV or Parquet, readable with pandas) with one row per image. Paths are
relative to a data root given when the manifest is read, so manifests move between machines.

Required columns: ``path, pid, camid, split, dataset, source``. Optional columns (empty when
unknown): ``azimuth, elevation`` (degrees, :mod:`posedive_lib.render.viewpoint` convention),
``pose_id``, ``keypoints`` (JSON list of 17 COCO ``[u, v, confidence]``), ``parent`` (the
reference image of a generated one), ``condition_id``, ``seed``, ``content_hash``. Other
columns are kept as they are.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..paths import atomic_output

REQUIRED_COLUMNS = ("path", "pid", "camid", "split", "dataset", "source")
OPTIONAL_COLUMNS = ("azimuth", "elevation", "pose_id", "keypoints", "parent", "condition_id", "seed",
                    "content_hash")
SPLITS = ("train", "query", "gallery")
SOURCES = ("real", "generated", "oracle", "extra")  # extra: real images from another data set (MARS for Tables 3, 4)
_SHOWN = 5  # rows named in an error message


class ManifestError(ValueError):
    """A manifest that downstream code must not use; the message names the rows and the fix."""


def _rows(mask: Iterable[bool], frame: pd.DataFrame, column: str = "path") -> str:
    bad = frame.loc[np.asarray(mask, bool)]
    listed = ", ".join(f"row {i} ({v!r})" for i, v in zip(bad.index[:_SHOWN], bad[column].iloc[:_SHOWN]))
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    return f"{listed}{more}"


def validate_manifest(frame: pd.DataFrame, root: str | os.PathLike | None = None, check_images: bool = False,
                      name: str = "manifest") -> pd.DataFrame:
    """Raise :class:`ManifestError` on the first problem found; return ``frame`` unchanged otherwise.

    Checks columns, splits, sources, integer ids, duplicate paths, and, with ``root``, that every path
    stays inside ``root`` and exists (``check_images`` also decodes each image).
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ManifestError(f"{name}: missing columns {missing}; a manifest needs {list(REQUIRED_COLUMNS)}")
    if frame.empty:
        raise ManifestError(f"{name}: no rows")
    for column in ("pid", "camid"):
        if not pd.api.types.is_integer_dtype(frame[column]):
            values = pd.to_numeric(frame[column], errors="coerce")
            not_integer = values.isna() | (values != values.round())
            where = f": {_rows(not_integer, frame, column)}" if not_integer.any() else f" (dtype {frame[column].dtype})"
            raise ManifestError(f"{name}: column {column!r} must hold integers{where}; fill in or drop those rows")
    paths = frame["path"].astype(str)
    checks = [
        (~frame["split"].isin(SPLITS), f"unknown split (use one of {SPLITS})", "split"),
        (~frame["source"].isin(SOURCES), f"unknown source (use one of {SOURCES})", "source"),
        (frame["path"].isna() | (paths == ""), "empty path", "path"),
        (paths.map(os.path.normpath).duplicated(keep=False), "duplicate path", "path"),
        (paths.map(lambda p: Path(p).is_absolute() or ".." in Path(p).parts),
         "path escapes the data root (use paths relative to it, without '..')", "path"),
    ]
    for mask, problem, column in checks:
        if mask.any():
            raise ManifestError(f"{name}: {problem}: {_rows(mask, frame, column)}")
    if "keypoints" in frame.columns:
        malformed = frame["keypoints"].map(lambda value: not _keypoints_are_valid(value))
        if malformed.any():
            raise ManifestError(f"{name}: malformed keypoints (want a JSON list of 17 [u, v, confidence] or empty): "
                                f"{_rows(malformed, frame)}; re-estimate them or leave the cells empty")
    if root is not None:
        root = Path(root)
        if not root.is_dir():
            raise ManifestError(f"{name}: data root {root} is not a folder; pass the folder the paths are relative to")
        exists = paths.map(lambda p: (root / p).is_file())
        if not exists.all():
            raise ManifestError(f"{name}: missing files under {root}: {_rows(~exists, frame)}")
        if check_images:
            readable = paths.map(lambda p: _image_is_readable(root / p))
            if not readable.all():
                raise ManifestError(f"{name}: unreadable images (corrupt or not an image): {_rows(~readable, frame)}; "
                                    "remove them or fix the files")
    return frame


def _keypoints_are_valid(value) -> bool:
    """An empty cell, or the JSON of 17 ``[u, v, confidence]`` numbers."""
    if not isinstance(value, str):
        return value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))
    try:
        return not value or np.asarray(json.loads(value), float).shape == (17, 3)
    except (ValueError, TypeError):
        return False


def _image_is_readable(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
        return True
    except Exception:
        return False


def new_manifest(rows: list[dict] | pd.DataFrame) -> pd.DataFrame:
    """A manifest frame with the required columns first, integer ids and empty optional columns."""
    frame = pd.DataFrame(rows).copy()
    if frame.empty and not len(frame.columns):  # no rows: keep the schema so validation says "no rows"
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in REQUIRED_COLUMNS})
    for column in OPTIONAL_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    for column in ("pid", "camid"):
        if column in frame.columns:
            frame[column] = frame[column].astype(np.int64)
    ordered = [c for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in frame.columns]
    return frame[ordered + [c for c in frame.columns if c not in ordered]].reset_index(drop=True)


def write_manifest(frame: pd.DataFrame, path: str | os.PathLike, root: str | os.PathLike | None = None) -> Path:
    """Validate, then write ``.csv`` or ``.parquet`` atomically (no half-written manifest on failure)."""
    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"manifest file must end in .csv or .parquet, got {path.name}")
    validate_manifest(frame, root, name=path.name)
    with atomic_output(path) as tmp:  # e.g. a column Parquet cannot store: no partial file, no temp file
        if path.suffix == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    return path


def read_manifest(path: str | os.PathLike, root: str | os.PathLike | None = None, check_images: bool = False) -> pd.DataFrame:
    """Read and validate a manifest; with ``root`` every file must exist under it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} not found; build it with the data set loaders first")
    if path.suffix not in (".csv", ".parquet"):
        raise ValueError(f"manifest file must end in .csv or .parquet, got {path.name}")
    try:
        if path.suffix == ".csv":
            frame = pd.read_csv(path, dtype={"path": str, "pose_id": str, "parent": str, "condition_id": str,
                                             "content_hash": str, "keypoints": str})
        else:
            frame = pd.read_parquet(path)
    except PermissionError:
        raise
    except (ValueError, OSError, pd.errors.ParserError) as error:  # empty, truncated, not UTF-8, not Parquet
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ManifestError(f"{path.name}: not a readable {path.suffix[1:]} manifest ({first_line}); "
                            "rebuild it with write_manifest or the data set loaders") from error
    return validate_manifest(frame, root, check_images=check_images, name=path.name)


def encode_keypoints(keypoints: np.ndarray) -> list[str]:
    """(N, 17, 3) keypoints -> JSON strings for the ``keypoints`` column (2 decimals)."""
    return [json.dumps(np.round(np.asarray(k, float), 2).tolist()) for k in keypoints]


def decode_keypoints(column: pd.Series) -> np.ndarray:
    """The ``keypoints`` column -> (N, 17, 3) float array (NaN where unknown)."""
    out = np.full((len(column), 17, 3), np.nan)
    for i, value in enumerate(column):
        if isinstance(value, str) and value:
            out[i] = np.asarray(json.loads(value), float)
    return out


def content_hash(path: str | os.PathLike) -> str:
    """First 16 hex digits of the SHA-1 of a file's bytes."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:16]
