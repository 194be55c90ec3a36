"""Manifest schema: validation errors, CSV and Parquet round trips, atomic writes."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from posedive_lib.data.manifest import (ManifestError, decode_keypoints, encode_keypoints, new_manifest,
                                        read_manifest, validate_manifest, write_manifest)


def _frame(root: Path, n: int = 3) -> pd.DataFrame:
    for i in range(n):
        (root / "imgs").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 16), (i, 0, 0)).save(root / "imgs" / f"{i}.jpg")
    return new_manifest([{"path": f"imgs/{i}.jpg", "pid": i, "camid": 1, "split": "train", "dataset": "x",
                          "source": "real"} for i in range(n)])


def test_new_manifest_orders_columns_and_types_ids(tmp_path):
    frame = _frame(tmp_path)
    assert list(frame.columns[:6]) == ["path", "pid", "camid", "split", "dataset", "source"]
    assert frame["pid"].dtype == np.int64 and frame["keypoints"].isna().all()
    assert validate_manifest(frame, tmp_path, check_images=True) is frame
    with pytest.raises(ManifestError, match="no rows"):
        validate_manifest(new_manifest([]))


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns="camid"), r"missing columns \['camid'\]"),
    (lambda f: f.assign(split=["train", "val", "query"]), r"unknown split.*row 1 \('val'\)"),
    (lambda f: f.assign(source=["real", "real", "fake"]), r"unknown source.*row 2 \('fake'\)"),
    (lambda f: f.assign(pid=[0.0, 1.0, 2.0]), r"'pid' must hold integers \(dtype float64\)"),
    (lambda f: f.assign(pid=[0, np.nan, 2]), r"'pid' must hold integers: row 1 \(nan\)"),
    (lambda f: f.assign(camid=["1", "c2", "3"]), r"'camid' must hold integers: row 1 \('c2'\)"),
    (lambda f: f.assign(keypoints=["[[1, 2, 0.5]]", None, "not json"]), r"malformed keypoints.*row 0.*row 2"),
    (lambda f: f.assign(path=["imgs/0.jpg", "imgs/0.jpg", "imgs/2.jpg"]), r"duplicate path.*row 0.*row 1"),
    (lambda f: f.assign(path=["imgs/0.jpg", "./imgs/0.jpg", "imgs/2.jpg"]), "duplicate path"),
    (lambda f: f.assign(path=["imgs/0.jpg", "../imgs/1.jpg", "imgs/2.jpg"]), r"escapes the data root.*row 1"),
    (lambda f: f.assign(path=["imgs/0.jpg", "/etc/passwd", "imgs/2.jpg"]), r"escapes the data root.*'/etc/passwd'"),
    (lambda f: f.assign(path=["imgs/0.jpg", "imgs/1.jpg", "imgs/9.jpg"]), r"missing files.*row 2 \('imgs/9.jpg'\)"),
])
def test_validation_names_the_problem_and_rows(tmp_path, change, message):
    with pytest.raises(ManifestError, match=message):
        validate_manifest(change(_frame(tmp_path)), tmp_path)


def test_corrupt_image_needs_check_images(tmp_path):
    frame = _frame(tmp_path)
    (tmp_path / "imgs" / "1.jpg").write_bytes(b"\xff\xd8 truncated")
    validate_manifest(frame, tmp_path)
    with pytest.raises(ManifestError, match=r"unreadable images.*row 1 \('imgs/1.jpg'\)"):
        validate_manifest(frame, tmp_path, check_images=True)
    with pytest.raises(ManifestError, match="not a folder"):
        validate_manifest(frame, tmp_path / "nowhere")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_with_keypoints(tmp_path, suffix):
    frame = _frame(tmp_path)
    keypoints = np.random.default_rng(0).uniform(0, 100, (3, 17, 3))
    frame["keypoints"] = encode_keypoints(keypoints)
    frame.loc[2, "keypoints"] = None
    frame["azimuth"] = [0.0, 90.5, np.nan]
    frame["pose_id"] = ["007", "008", None]  # leading zeros must survive CSV
    path = write_manifest(frame, tmp_path / f"m{suffix}", tmp_path)
    back = read_manifest(path, tmp_path, check_images=True)
    assert back["path"].tolist() == frame["path"].tolist() and back["pid"].dtype == np.int64
    assert back["pose_id"].tolist()[:2] == ["007", "008"]
    np.testing.assert_allclose(back["azimuth"].astype(float), [0.0, 90.5, np.nan])
    decoded = decode_keypoints(back["keypoints"])
    np.testing.assert_allclose(decoded[:2], keypoints[:2], atol=0.005)
    assert np.isnan(decoded[2]).all()
    assert sorted(os.listdir(tmp_path)) == ["imgs", f"m{suffix}"]


def test_write_is_atomic(tmp_path, monkeypatch):
    frame = _frame(tmp_path)
    target = tmp_path / "m.csv"
    write_manifest(frame, target, tmp_path)
    before = target.read_bytes()
    with pytest.raises(ManifestError, match="unknown split"):
        write_manifest(frame.assign(split="val"), target, tmp_path)
    with pytest.raises(ManifestError, match="unknown split"):
        write_manifest(frame.assign(split="val"), tmp_path / "new.csv")
    assert target.read_bytes() == before and not (tmp_path / "new.csv").exists()
    import pyarrow

    with pytest.raises(pyarrow.ArrowException):  # Parquet cannot store a column mixing ints and strings
        write_manifest(frame.assign(seed=[1, "a", 2.5]), tmp_path / "m.parquet")
    assert sorted(os.listdir(tmp_path)) == ["imgs", "m.csv"]  # neither the file nor its temporary copy

    def disk_full(self, path, **kwargs):
        Path(path).write_text("path,pid\n")
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_manifest(frame.iloc[:1], target)
    monkeypatch.undo()
    assert target.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["imgs", "m.csv"]
    with pytest.raises(ValueError, match="end in .csv or .parquet"):
        write_manifest(frame, tmp_path / "m.json")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_manifest(tmp_path / "absent.csv")


@pytest.mark.parametrize("suffix, content", [
    (".csv", b""),  # empty file
    (".csv", b"path,pid\n\xff\xfe\x00broken"),  # not UTF-8
    (".csv", b'path,pid\n"unterminated,1\n'),  # malformed CSV
    (".parquet", b"PAR1 truncated"),
])
def test_unreadable_manifest_file_is_named(tmp_path, suffix, content):
    path = tmp_path / f"m{suffix}"
    path.write_bytes(content)
    with pytest.raises(ManifestError, match=rf"m\{suffix}: not a readable {suffix[1:]} manifest.*rebuild it"):
        read_manifest(path)


def test_failed_write_leaves_no_new_folder(tmp_path):
    import pyarrow

    frame = _frame(tmp_path)
    with pytest.raises(pyarrow.ArrowException):  # Parquet cannot store a column mixing ints and strings
        write_manifest(frame.assign(seed=[1, "a", 2.5]), tmp_path / "new" / "deeper" / "m.parquet")
    assert sorted(os.listdir(tmp_path)) == ["imgs"]
    write_manifest(frame, tmp_path / "new" / "deeper" / "m.parquet")
    assert (tmp_path / "new" / "deeper" / "m.parquet").is_file()
