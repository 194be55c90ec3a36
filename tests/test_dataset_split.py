"""MSMT17-S custom splits of a real data set on disk: pooling, resumable annotation, split, export and the CLI."""
from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from posedive_lib.cli import main
from posedive_lib.data.dataset_split import split_dataset
from posedive_lib.data.manifest import decode_keypoints
from posedive_lib.data.real_datasets import load_market1501, load_msmt17, pooled_identities
from posedive_lib.data.splits import check_split_options, load_split
from posedive_lib.render.viewpoint import angular_difference

needs_mediapipe = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="needs mediapipe (make setup)")


@pytest.fixture(scope="module")
def market(smoke_market):
    """The smoke world as a Market-1501 folder (conftest)."""
    return smoke_market


def _manifest(dataset: str, rows: list[tuple[str, int, int]]) -> pd.DataFrame:
    return pd.DataFrame([{"path": f"{split}/{i}.jpg", "pid": pid, "camid": cam, "split": split, "dataset": dataset,
                          "source": "real"} for i, (split, pid, cam) in enumerate(rows)])


def test_pooled_identities_keep_one_pid_per_person():
    msmt = _manifest("msmt17", [("train", 0, 1), ("train", 4, 2), ("query", 0, 1), ("gallery", 0, 3), ("query", 2, 1),
                                ("gallery", 2, 2), ("gallery", 3, 1)])
    pooled = pooled_identities(msmt)
    assert pooled["pid"].tolist() == [0, 4, 5, 5, 7, 7]  # test people numbered from 0 again: moved above the train ones
    assert pooled["original_split"].tolist() == msmt["split"].tolist()[:6]  # gallery-only pid 3: nobody searched for
    market = _manifest("market1501", [("train", 2, 1), ("query", 7, 1), ("gallery", 7, 2), ("gallery", 0, 3)])
    assert pooled_identities(market)["pid"].tolist() == [2, 7, 7]  # the distractors (pid 0) are nobody's images
    duke = _manifest("dukemtmc", [("train", 2, 1), ("query", 7, 1), ("gallery", 7, 2), ("gallery", 5001, 3)])
    assert pooled_identities(duke)["pid"].tolist() == [2, 7, 7]  # a gallery-only distractor person
    with pytest.raises(ValueError, match="one data set at a time"):
        pooled_identities(pd.concat([msmt, market]))


def test_annotation_resumes_at_the_chunk_it_stopped_in(tmp_path, monkeypatch):
    from PIL import Image

    from posedive_lib.augment import keypoints

    calls = []

    class Counting:  # stand-in estimator: confidence = image value / 255; fails on demand
        fail_after = None

        def estimate(self, images):
            calls.append(len(images))
            if Counting.fail_after is not None and len(calls) > Counting.fail_after:
                raise KeyboardInterrupt
            n = len(images)
            points = np.zeros((n, 17, 3), np.float32)
            points[..., 2] = images[:, 0, 0, 0, None] / 255
            return {"keypoints": points, "found": np.ones(n, bool), "elevation": np.zeros(n), "azimuth": np.zeros(n)}

        def close(self):
            pass

    monkeypatch.setattr(keypoints, "PoseEstimator", Counting)
    for i in range(5):
        Image.new("RGB", (8, 16), (10 * i, 0, 0)).save(tmp_path / f"{i}.jpg")
    frame = _manifest("market1501", [("train", 1, 1)] * 5).assign(path=[f"{i}.jpg" for i in range(5)])
    cache = tmp_path / "cache"
    Counting.fail_after = 2  # killed in the third chunk of two images
    with pytest.raises(KeyboardInterrupt):
        keypoints.annotated(frame, tmp_path, progress=False, cache=cache, chunk=2)
    assert len(list(cache.glob("*.csv"))) == 2
    calls.clear()
    Counting.fail_after = None
    out = keypoints.annotated(frame, tmp_path, progress=False, cache=cache, chunk=2)
    assert calls == [1]  # only the last chunk was estimated
    confidence = decode_keypoints(out["keypoints"])[:, 0, 2]
    assert out["path"].tolist() == frame["path"].tolist() and confidence == pytest.approx([i * 10 / 255 for i in range(5)], abs=0.01)
    assert out.drop(columns=["keypoints", "elevation", "azimuth", "kp_found"]).equals(frame)  # the rows as given
    import os

    Image.new("RGB", (8, 16), (200, 0, 0)).save(tmp_path / "0.jpg")  # replaced under the same name
    os.utime(tmp_path / "0.jpg", ns=(1, 1))
    calls.clear()
    again = keypoints.annotated(frame.assign(pid=7), tmp_path, progress=False, cache=cache, chunk=2)
    assert calls == [2] and decode_keypoints(again["keypoints"])[0, 0, 2] == pytest.approx(200 / 255, abs=0.01)
    assert set(again["pid"]) == {7}  # the cache holds annotations only, never the rows of an earlier call


@needs_mediapipe
def test_a_cam_split_of_a_data_set_on_disk_is_exported(market, tmp_path, monkeypatch):
    with pytest.warns(UserWarning, match="have no person found by mediapipe"):
        result = split_dataset("market", market, "cam", tmp_path / "split", half_width=45, gap=0, progress=False)
    split, definition = result["split"], load_split(tmp_path / "split" / "split.json")
    assert definition == json.loads((result["export"] / "split.json").read_text()) == result["definition"]
    assert not set(definition["train_pids"]) & set(definition["test_pids"])
    train, test = split[split["split"] == "train"], split[split["split"] != "train"]
    assert set(train["pid"]) <= set(definition["train_pids"]) and set(test["pid"]) <= set(definition["test_pids"])
    distance = lambda frame: np.min([angular_difference(frame["azimuth"].to_numpy(float), s) for s in (0, 180)], axis=0)  # noqa: E731
    assert (distance(train) <= 45).all() and (distance(test) >= 45).all()
    exported = load_market1501(result["export"])
    assert exported.groupby("split").size().to_dict() == split.groupby("split").size().to_dict()
    mapping = pd.read_csv(result["export"] / "mapping.csv")
    assert sorted(mapping["path"]) == sorted(split["path"]) and (mapping["pid"] == mapping["export_pid"]).all()
    assert all((market / p).is_file() for p in mapping["path"])
    manifest = pd.read_csv(tmp_path / "split" / "split_manifest.csv")
    assert len(manifest) == len(split) and {"azimuth", "keypoints", "original_split"} <= set(manifest.columns)
    from posedive_lib.data.dataset_split import split_annotations

    rows = exported[exported["split"] == "train"]
    known = split_annotations(rows, result["export"])  # what `augment --mode pose` reads instead of estimating again
    by_file = mapping.set_index("file")["path"]
    expected = split.set_index("path").loc[rows["path"].map(by_file), "azimuth"].to_numpy()
    assert known["path"].tolist() == rows["path"].tolist() and np.allclose(known["azimuth"], expected)
    assert known["kp_found"].all() and split_annotations(rows, market) is None  # the data set itself: estimate
    import posedive_lib.augment.keypoints as keypoints

    def no_estimation(*args, **kwargs):
        raise AssertionError("a split's export was estimated again")

    monkeypatch.setattr(keypoints, "PoseEstimator", no_estimation)  # e.g. notebook 01 on the split's export
    pd.testing.assert_frame_equal(keypoints.annotated(rows, result["export"], progress=False), known)


@needs_mediapipe
def test_cli_splits_and_refuses_impossible_options_before_reading_images(market, tmp_path, capsys, monkeypatch):
    import matplotlib.pyplot as plt

    out, closed = tmp_path / "pose", []
    monkeypatch.setattr(plt, "close", closed.append)  # the figure the command shows and closes
    with pytest.warns(UserWarning, match="no person found by mediapipe"):
        assert main(["split", "--dataset", "market1501", "--data-root", str(market), "--kind", "pose",
                     "--clusters", "2", "--out", str(out)]) == 0
    assert "read it as --dataset market1501" in capsys.readouterr().out
    assert closed[0].get_suptitle() == "market1501 re-split as MSMT17-S Pose"
    for name in ("split.json", "split_manifest.csv", "split_sizes.csv", "split_coverage.csv", "split.png"):
        assert (out / name).is_file(), name
    definition = load_split(out / "split.json")
    assert definition["kind"] == "pose" and len(definition["centres"]) == 2
    sizes = pd.read_csv(out / "split_sizes.csv").set_index("split")["images"]
    assert sizes.to_dict() == load_market1501(out / "market_layout").groupby("split").size().to_dict()
    with pytest.raises(SystemExit, match="lies in the data set's folder .* only read"):
        main(["split", "--dataset", "market1501", "--data-root", str(market), "--kind", "cam", "--out", str(market / "s")])
    stamp = (out / "split.json").stat().st_mtime_ns
    with pytest.raises(SystemExit, match="would replace .*market_layout, the data set it reads"):  # at once, not after
        main(["split", "--dataset", "market1501", "--data-root", str(out / "market_layout"), "--kind", "cam",  # annotating
              "--out", str(out)])
    assert (out / "split.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match=r"unknown split option\(s\) \['seed'\]; use \['test_fraction'"):
        check_split_options("cam", seed=1)  # e.g. notebook 08's split_options: the seed comes from its seeds
    with pytest.raises(ValueError, match="whole number of clusters"):
        check_split_options("pose", clusters=8.0)
    missing = tmp_path / "nothing"
    for options, message in ((["--kind", "cam", "--half-width", "80"], "half_width \\+ gap < 90"),
                             (["--kind", "pose", "--clusters", "1"], "clusters >= 2"),
                             (["--kind", "cam", "--test-fraction", "1"], "test_fraction must lie in")):
        with pytest.raises(SystemExit, match=message):  # the folder does not exist: the options are checked first
            main(["split", "--dataset", "msmt17", "--data-root", str(missing), "--out", str(tmp_path / "x"), *options])
    with pytest.raises(SystemExit, match="MSMT17.*missing"):
        main(["split", "--dataset", "msmt17", "--data-root", str(market), "--kind", "cam", "--out", str(tmp_path / "x")])
    assert not (tmp_path / "x").exists()


@needs_mediapipe
def test_an_msmt17_split_keeps_train_and_test_people_apart(smoke_world, tmp_path):
    """MSMT17 numbers its test people from 0 again: pooled, each exported pid is still one person."""
    from PIL import Image

    root, person = tmp_path / "MSMT17_V1", {}
    for split, folder, lists in (("train", "train", ("list_train.txt",)), ("test", "test", ("list_query.txt", "list_gallery.txt"))):
        rows = smoke_world.subset(split)
        pids = {pid: i for i, pid in enumerate(sorted(rows["pid"].unique()))}  # from 0 on both sides, as MSMT17
        for name, subset in zip(lists, [rows] if split == "train" else [rows[rows.split == "query"], rows[rows.split == "gallery"]]):
            lines = []
            for row in subset.itertuples():
                i = len(person)  # a running number: no two files share a name
                file = f"{pids[row.pid]:04d}/{pids[row.pid]:04d}_{i:03d}_{row.camid + 1:02d}_0303morning_{i:04d}_0.jpg"
                (root / folder / file).parent.mkdir(parents=True, exist_ok=True)
                Image.open(smoke_world.root / row.path).convert("RGB").save(root / folder / file, quality=95)
                lines.append(f"{file} {pids[row.pid]}")
                person[f"{folder}/{file}"] = row.pid
            (root / name).write_text("\n".join(lines) + "\n")
    (root / "list_val.txt").write_text("")
    pool = pooled_identities(load_msmt17(root)).assign(person=lambda m: m["path"].map(person))
    assert pool.groupby("pid")["person"].nunique().eq(1).all() and pool["pid"].nunique() == len(set(person.values()))
    with pytest.warns(UserWarning, match="no person found by mediapipe"):
        result = split_dataset("msmt17", root, "pose", tmp_path / "split", clusters=2, progress=False)
    mapping = pd.read_csv(result["export"] / "mapping.csv").assign(person=lambda m: m["path"].map(person))
    people = mapping.groupby("export_pid")["person"].nunique()
    assert (people == 1).all() and mapping.groupby("person")["export_pid"].nunique().eq(1).all()
    assert result["definition"]["dataset"] == "msmt17"
