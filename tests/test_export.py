"""Market-1501 export of a fabricated manifest, read back with the Market loader."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from posedive_lib.data.export import MAPPING_COLUMNS, export_market_layout, export_pids, market_names
from posedive_lib.data.manifest import ManifestError, new_manifest
from posedive_lib.data.real_datasets import load_market1501, split_counts


def _image(path: Path, value: int = 128, fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 8, 3), value, np.uint8)).save(path, fmt)


ROWS = [  # path, pid, camid, split, source
    ("real/a.jpg", 5, 1, "train", "real"),
    ("real/b.jpg", 5, 1, "train", "real"),
    ("gen/c.png", 5, 12, "train", "generated"),  # PNG -> JPEG, camera 12 -> two digits
    ("real/d.jpg", 12345, 3, "train", "real"),  # pid wider than 4 digits
    ("real/e.jpg", 7, 2, "query", "real"),
    ("real/f.jpg", 7, 4, "gallery", "real"),
    ("real/g.jpg", 0, 4, "gallery", "real"),  # distractor stays 0000
    ("real/h.jpg", 0, 5, "gallery", "real"),
    ("oracle/i.jpg", -3, 2, "train", "oracle"),  # negative pid -> remapped
]


def _manifest(root: Path, rows=ROWS) -> pd.DataFrame:
    for i, (path, *_rest) in enumerate(rows):
        _image(root / path, 20 * i, "PNG" if path.endswith(".png") else "JPEG")
    return new_manifest([{"path": p, "pid": pid, "camid": cam, "split": split, "dataset": "fab", "source": source}
                         for p, pid, cam, split, source in rows])


def test_export_reads_back_with_the_market_loader(tmp_path):
    frame = _manifest(tmp_path / "data")
    mapping = export_market_layout(frame, tmp_path / "data", tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["data", "out"]  # no temporary folder left
    assert sorted(os.listdir(tmp_path / "out")) == ["bounding_box_test", "bounding_box_train", "mapping.csv", "query"]
    back = load_market1501(tmp_path / "out", check_images=True)
    assert split_counts(back)["images"].to_dict() == {"train": 5, "query": 1, "gallery": 3}
    merged = mapping.merge(back, left_on="file", right_on="path", suffixes=("", "_back"))
    assert len(merged) == len(frame)
    assert (merged["camid_back"] == merged["camid"]).all() and (merged["split_back"] == merged["split"]).all()
    assert (merged["pid_back"] == merged["export_pid"]).all()
    assert merged.loc[merged.pid > 0, "pid_back"].equals(merged.loc[merged.pid > 0, "pid"])  # positive pids kept
    assert merged.loc[merged.pid == 0, "pid_back"].tolist() == [0, 0]
    assert merged.loc[merged.pid == -3, "pid_back"].tolist() == [12346]  # max pid + 1
    assert 12 in set(back["camid"])
    names = dict(zip(mapping["path"], mapping["file"]))
    assert names["gen/c.png"] == "bounding_box_train/0005_c12s1_000001_01.jpg"
    assert names["real/b.jpg"] == "bounding_box_train/0005_c1s1_000002_00.jpg"
    assert names["real/d.jpg"] == "bounding_box_train/12345_c3s1_000001_00.jpg"
    assert names["oracle/i.jpg"].endswith("_02.jpg")
    with Image.open(tmp_path / "out" / names["gen/c.png"]) as image:
        assert image.format == "JPEG" and image.size == (8, 16)
    assert (tmp_path / "out" / names["real/a.jpg"]).read_bytes() == (tmp_path / "data/real/a.jpg").read_bytes()
    saved = pd.read_csv(tmp_path / "out" / "mapping.csv")
    assert tuple(saved.columns) == MAPPING_COLUMNS and saved["file"].tolist() == mapping["file"].tolist()


def test_refuses_to_overwrite_and_replaces_with_overwrite(tmp_path):
    frame = _manifest(tmp_path / "data")
    export_market_layout(frame, tmp_path / "data", tmp_path / "out")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_market_layout(frame.iloc[:2], tmp_path / "data", tmp_path / "out")
    assert len(load_market1501(tmp_path / "out")) == len(frame)  # untouched
    export_market_layout(frame.iloc[:2], tmp_path / "data", tmp_path / "out", overwrite=True)
    with pytest.warns(UserWarning, match="no images for query"):  # the first two rows are train images only
        assert len(load_market1501(tmp_path / "out")) == 2
    assert sorted(os.listdir(tmp_path)) == ["data", "out"]
    (tmp_path / "empty").mkdir()  # an existing empty folder is fine
    export_market_layout(frame, tmp_path / "data", tmp_path / "empty")
    with pytest.raises(ValueError, match="contains the data root"):
        export_market_layout(frame, tmp_path / "data", tmp_path, overwrite=True)


def test_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    frame = _manifest(tmp_path / "data")
    calls, copyfile = [], shutil.copyfile

    def failing_copy(source, target):
        calls.append(source)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return copyfile(source, target)

    monkeypatch.setattr(shutil, "copyfile", failing_copy)
    with pytest.raises(KeyboardInterrupt):
        export_market_layout(frame, tmp_path / "data", tmp_path / "out")
    assert len(calls) == 3 and sorted(os.listdir(tmp_path)) == ["data"]


def test_corrupt_png_is_named_and_leaves_no_folders(tmp_path):
    frame = _manifest(tmp_path / "data")
    (tmp_path / "data" / "gen" / "c.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(ValueError, match=r"cannot read image .*c\.png .*check_images=True"):
        export_market_layout(frame, tmp_path / "data", tmp_path / "new" / "deeper" / "out")
    assert sorted(os.listdir(tmp_path)) == ["data"]  # neither the export nor the folders made for it


def test_hard_links_and_separate_roots(tmp_path):
    real = _manifest(tmp_path / "real", [("a.jpg", 1, 1, "train", "real"), ("b.jpg", 2, 2, "query", "real"),
                                         ("c.jpg", 2, 3, "gallery", "real")])
    gen = _manifest(tmp_path / "gen", [("a.jpg", 1, 2, "train", "generated")]).assign(dataset="posedive")
    both = pd.concat([real.assign(dataset="market1501"), gen], ignore_index=True)
    with pytest.raises(ValueError, match=r"no data root given for data set\(s\) \['posedive'\]"):
        export_market_layout(both, {"market1501": tmp_path / "real"}, tmp_path / "out")
    mapping = export_market_layout(both, {"market1501": tmp_path / "real", "posedive": tmp_path / "gen"},
                                   tmp_path / "out", link=True)
    first = tmp_path / "out" / mapping["file"].iloc[0]
    assert os.stat(first).st_ino == os.stat(tmp_path / "real" / "a.jpg").st_ino
    assert mapping["file"].tolist()[3] == "bounding_box_train/0001_c2s1_000001_01.jpg"
    assert split_counts(load_market1501(tmp_path / "out"))["ids"].to_dict() == {"train": 1, "query": 1, "gallery": 1}


def test_pid_rules_and_invalid_manifests(tmp_path):
    # MSMT17-like: pid 0 is a real identity in query, so every pid 0 is remapped; negatives share the new range.
    frame = new_manifest([{"path": f"{i}.jpg", "pid": pid, "camid": 1, "split": split, "dataset": "x",
                           "source": "real"}
                          for i, (pid, split) in enumerate([(0, "query"), (0, "gallery"), (4, "gallery"),
                                                            (-2, "train"), (-2, "train")])])
    assert export_pids(frame).tolist() == [6, 6, 4, 5, 5]
    assert market_names(frame)[3:] == ["0005_c1s1_000001_00.jpg", "0005_c1s1_000002_00.jpg"]
    root = tmp_path / "data"
    bad = _manifest(root, [("a.jpg", 1, 0, "train", "real")])
    with pytest.raises(ManifestError, match="camera numbers >= 1"):
        export_market_layout(bad, root, tmp_path / "out")
    (root / "z.jpg").write_bytes(b"not a jpeg")
    corrupt = new_manifest([{"path": "z.jpg", "pid": 1, "camid": 1, "split": "train", "dataset": "x",
                             "source": "real"}])
    with pytest.raises(ManifestError, match="z.jpg"):
        export_market_layout(corrupt, root, tmp_path / "out", check_images=True)
    assert not (tmp_path / "out").exists()
