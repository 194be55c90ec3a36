"""Real data set loaders on fabricated folders that follow each data set's naming rules."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from posedive_lib.data.manifest import ManifestError, validate_manifest
from posedive_lib.data.real_datasets import (DATASETS, PUBLISHED_COUNTS, check_before_run, load_cuhk03,
                                             load_dataset, load_dukemtmc, load_market1501, load_msmt17,
                                             split_counts)


def _jpeg(path: Path, value: int = 128) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((16, 8, 3), value, np.uint8)).save(path, "JPEG")


MARKET = {
    "bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s2_000101_01.jpg",
                           "0007_c6s3_000201_02.jpg", "1501_c5s1_000001_01.jpg"],
    "query": ["0010_c1s1_000101_00.jpg", "0011_c4s3_000301_00.jpg"],
    "bounding_box_test": ["0010_c2s1_000201_01.jpg", "0011_c6s1_000401_02.jpg", "0011_c5s1_000402_01.jpg",
                          "0000_c1s1_000001_03.jpg", "0000_c3s2_000002_04.jpg", "-1_c1s1_000003_01.jpg",
                          "-1_c3s1_000004_02.jpg"],
}


def _market(root: Path, files: dict = MARKET) -> Path:
    for folder, names in files.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(names):
            _jpeg(root / folder / name, 10 * i)
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"\0\1")
    (root / "query" / "readme.txt").write_text("not an image")
    return root


def test_market_counts_ids_and_cameras(tmp_path):
    frame = load_market1501(_market(tmp_path))
    validate_manifest(frame, tmp_path)
    counts = split_counts(frame)
    assert counts["images"].to_dict() == {"train": 5, "query": 2, "gallery": 5}  # 2 junk dropped of 7
    assert counts.loc["train", "ids"] == 3
    row = frame.set_index("path").loc["bounding_box_train/0002_c1s1_000451_03.jpg"]
    assert (row["pid"], row["camid"], row["split"]) == (2, 1, "train")
    assert frame.set_index("path").loc["bounding_box_train/1501_c5s1_000001_01.jpg", "pid"] == 1501
    assert sorted(frame.loc[frame.split == "train", "camid"]) == [1, 2, 3, 5, 6]  # 1-based, as in the names
    assert (frame["pid"] != -1).all()
    assert set(frame.loc[frame.pid == 0, "split"]) == {"gallery"} and (frame.pid == 0).sum() == 2
    assert set(frame["dataset"]) == {"market1501"} and set(frame["source"]) == {"real"}
    assert frame["pid"].dtype == np.int64 and frame["camid"].dtype == np.int64
    assert not frame["path"].str.contains("Thumbs|readme").any()


def test_empty_splits_are_named(tmp_path):
    only_train = {"bounding_box_train": MARKET["bounding_box_train"], "query": [], "bounding_box_test": []}
    root = _market(tmp_path / "train_only", only_train)
    with pytest.warns(UserWarning, match=r"no images for query .*query/\), gallery .*bounding_box_test/"):
        assert set(load_market1501(root)["split"]) == {"train"}
    empty = _market(tmp_path / "empty", {folder: [] for folder in MARKET})
    with pytest.raises(ValueError, match="no images in train .*bounding_box_train/"):
        load_market1501(empty)


def test_missing_folders_are_all_named_at_once(tmp_path):
    (tmp_path / "query").mkdir()
    with pytest.raises(FileNotFoundError) as error:
        load_market1501(tmp_path)
    message = str(error.value)
    missing, expected = message.split("; expected ")
    assert missing == f"missing bounding_box_train/, bounding_box_test/ under {tmp_path}"
    assert "\n" not in message and "query/" in expected and "0002_c1s1_000451_03.jpg" in expected
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_market1501(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"missing a/, b\.txt under"):
        check_before_run(tmp_path, ["query", "a"], ["b.txt"])


def test_wrong_name_is_an_error_naming_the_file(tmp_path):
    _market(tmp_path)
    _jpeg(tmp_path / "query" / "person12_cam1.jpg")
    with pytest.raises(ValueError, match=r"query/person12_cam1\.jpg.*rename") as error:
        load_market1501(tmp_path)
    assert "_c(" in str(error.value)  # names the expected pattern


def test_distractor_outside_gallery_and_camera_zero_are_errors(tmp_path):
    _market(tmp_path)
    _jpeg(tmp_path / "query" / "0000_c1s1_000009_00.jpg")
    with pytest.raises(ValueError, match=r"distractor pid 0 outside the gallery.*query/0000_c1s1_000009_00\.jpg"):
        load_market1501(tmp_path)
    (tmp_path / "query" / "0000_c1s1_000009_00.jpg").unlink()
    _jpeg(tmp_path / "query" / "0012_c0s1_000009_00.jpg")
    with pytest.raises(ValueError, match="camera numbers start at 1"):
        load_market1501(tmp_path)


def test_corrupt_image_is_caught_only_with_check_images(tmp_path):
    _market(tmp_path)
    bad = tmp_path / "bounding_box_test" / "0011_c2s1_000999_01.jpg"
    bad.write_bytes(np.random.default_rng(0).bytes(300))
    frame = load_market1501(tmp_path)  # listing only
    assert len(frame) == 13
    with pytest.raises(ManifestError, match=r"unreadable images.*bounding_box_test/0011_c2s1_000999_01\.jpg"):
        load_market1501(tmp_path, check_images=True)


def test_dukemtmc_naming_and_eight_cameras(tmp_path):
    files = {"bounding_box_train": ["0001_c2_f0046182.jpg", "0001_c8_f0050000.jpg", "0005_c1_f0000001.jpg"],
             "query": ["0008_c7_f0001234.jpg"],
             "bounding_box_test": ["0008_c3_f0004567.jpg", "0009_c4_f0000010.jpg"]}
    frame = load_dataset("DukeMTMC-reID", _market(tmp_path, files))
    assert split_counts(frame)["images"].to_dict() == {"train": 3, "query": 1, "gallery": 2}
    assert frame.set_index("path").loc["bounding_box_train/0001_c8_f0050000.jpg", ["pid", "camid"]].tolist() == [1, 8]
    assert set(frame["dataset"]) == {"dukemtmc"}
    assert load_dukemtmc(tmp_path).equals(frame)


def _msmt(root: Path, train_dir="train", test_dir="test") -> Path:
    lists = {
        "list_train.txt": (train_dir, ["0000/0000_000_01_0303morning_0008_0.jpg 0",
                                       "0000/0000_001_14_0303morning_0010_1.jpg 0",
                                       "0001/0001_000_15_0303noon_0001_0.jpg 1"]),
        "list_val.txt": (train_dir, ["0002/0002_000_03_0303afternoon_0005_0.jpg 2"]),
        "list_query.txt": (test_dir, ["0000/0000_000_05_0113morning_0001_0.jpg 0",
                                      "0001/0001_000_12_0113noon_0002_0.jpg 1"]),
        "list_gallery.txt": (test_dir, ["0000/0000_001_06_0113morning_0003_0.jpg 0",
                                        "0001/0001_001_02_0113noon_0004_0.jpg 1",
                                        "0001/0001_002_10_0113noon_0005_1.jpg 1"]),
    }
    for name, (folder, lines) in lists.items():
        for line in lines:
            _jpeg(root / folder / line.split()[0])
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def test_msmt17_lists_cameras_and_validation_split(tmp_path):
    frame = load_msmt17(_msmt(tmp_path))
    validate_manifest(frame, tmp_path)
    assert split_counts(frame)["images"].to_dict() == {"train": 4, "query": 2, "gallery": 3}
    assert split_counts(frame).loc["train", "ids"] == 3
    row = frame.set_index("path").loc["train/0000/0000_001_14_0303morning_0010_1.jpg"]
    assert (row["pid"], row["camid"], row["split"]) == (0, 14, "train")
    assert frame.loc[frame.split == "gallery", "camid"].tolist() == [6, 2, 10]
    assert frame.loc[frame.split == "query", "pid"].tolist() == [0, 1]  # test pids kept as in the lists
    only_train = load_dataset("msmt17", tmp_path, include_val=False)
    assert split_counts(only_train)["images"].to_dict() == {"train": 3, "query": 2, "gallery": 3}
    assert 2 not in set(only_train["pid"])
    (tmp_path / "list_val.txt").unlink()
    assert len(load_msmt17(tmp_path, include_val=False)) == 8  # list_val.txt not needed then
    with pytest.raises(FileNotFoundError, match=r"missing list_val\.txt under"):
        load_msmt17(tmp_path)


def test_msmt17_v2_folders_and_layout_errors(tmp_path):
    frame = load_msmt17(_msmt(tmp_path / "v2", "mask_train_v2", "mask_test_v2"))
    assert frame["path"].str.startswith(("mask_train_v2/", "mask_test_v2/")).all() and len(frame) == 9
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "list_train.txt").write_text("")
    with pytest.raises(FileNotFoundError) as error:
        load_msmt17(tmp_path / "empty")
    for name in ("train/", "test/", "mask_train_v2/", "mask_test_v2/", "list_val.txt", "list_query.txt",
                 "list_gallery.txt"):
        assert name in str(error.value)
    assert "list_train.txt," not in str(error.value).split("expected")[0]


def test_msmt17_malformed_line_and_missing_image(tmp_path):
    _msmt(tmp_path)
    with open(tmp_path / "list_query.txt", "a") as f:
        f.write("0003/badname.jpg 3\n")
    with pytest.raises(ValueError, match=r"list_query\.txt.*line 3 \('0003/badname\.jpg 3'\)"):
        load_msmt17(tmp_path)
    _msmt(tmp_path)
    with open(tmp_path / "list_gallery.txt", "a") as f:
        f.write("0009/0009_000_04_0113noon_0009_0.jpg 9\n")  # listed, but no such image
    with pytest.raises(ManifestError, match=r"missing files.*test/0009/0009_000_04_0113noon_0009_0\.jpg"):
        load_msmt17(tmp_path)


def test_msmt17_list_that_is_not_utf8_is_named(tmp_path):
    _msmt(tmp_path)
    (tmp_path / "list_gallery.txt").write_bytes("0000/caf\u00e9.jpg 0\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"list_gallery\.txt is not a UTF-8 text file \(byte 8\)"):
        load_msmt17(tmp_path)


def test_market_subfolder_is_named_in_a_warning(tmp_path):
    _market(tmp_path)
    _jpeg(tmp_path / "bounding_box_train" / "bounding_box_train" / "0003_c1s1_000001_01.jpg")
    with pytest.warns(UserWarning, match=r"bounding_box_train: subfolder\(s\) bounding_box_train ignored"):
        frame = load_market1501(tmp_path)
    assert split_counts(frame).loc["train", "images"] == 5  # the nested image is not read


def test_cuhk03_both_variants(tmp_path):
    labeled = {"bounding_box_train": ["0001_c1_001.png", "0001_c2_002.png", "0003_c1_003.png"],
               "query": ["0701_c1_004.png"], "bounding_box_test": ["0701_c2_005.png", "0702_c1_006.png"]}
    detected = {"bounding_box_train": ["0001_c1_001.png", "0003_c2_002.png"],
                "query": ["0701_c2_004.png"], "bounding_box_test": ["0701_c1_005.png"]}
    for variant, files in (("labeled", labeled), ("detected", detected)):
        for folder, names in files.items():
            for name in names:
                path = tmp_path / "cuhk03-np" / variant / folder / name
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (8, 16)).save(path)
    frame = load_cuhk03(tmp_path)
    assert split_counts(frame)["images"].to_dict() == {"train": 3, "query": 1, "gallery": 2}
    assert set(frame["dataset"]) == {"cuhk03_labeled"}
    assert frame["path"].iloc[0] == "cuhk03-np/labeled/bounding_box_train/0001_c1_001.png"
    validate_manifest(frame, tmp_path)
    det = load_dataset("cuhk03_detected", tmp_path)
    assert split_counts(det)["images"].to_dict() == {"train": 2, "query": 1, "gallery": 1}
    assert set(det["dataset"]) == {"cuhk03_detected"}
    inner = load_cuhk03(tmp_path / "cuhk03-np", variant="detected")  # root may be the cuhk03-np folder itself
    assert inner["path"].iloc[0] == "detected/bounding_box_train/0001_c1_001.png"
    with pytest.raises(ValueError, match="variant must be one of"):
        load_cuhk03(tmp_path, variant="both")
    with pytest.raises(ValueError, match="conflicts"):
        load_dataset("cuhk03_labeled", tmp_path, variant="detected")


def test_registry_and_published_counts():
    assert set(DATASETS) >= {"market1501", "dukemtmc", "msmt17", "cuhk03_labeled", "cuhk03_detected"}
    assert set(PUBLISHED_COUNTS) <= set(DATASETS)
    assert PUBLISHED_COUNTS["market1501"]["gallery"] == 15913 and PUBLISHED_COUNTS["msmt17"]["train"] == 32621
    with pytest.raises(ValueError, match="unknown data set 'viper'"):
        load_dataset("viper", ".")
