"""The paper's Table 3 on real data: MARS frames of Market-1501's people against Pose-dIVE's images, at equal size,
on stand-ins: a Market-1501 folder and a MARS folder made of the smoke world."""
from __future__ import annotations

import importlib.util
import shutil

import pandas as pd
import pytest

from posedive_lib.augment.dataset_augmentation import augment_dataset
from posedive_lib.augment.filtering import FilterThresholds
from posedive_lib.augment.generate import AugmentConfig
from posedive_lib.cli import main
from posedive_lib.data.quantity_control import quantity_exports
from posedive_lib.data.real_datasets import load_market1501, load_mars_train
from posedive_lib.generator.sizes import tiny_generator
from posedive_lib.reid.dataset_study import _check_same_data_set, augmented_export

KEEP_ALL = FilterThresholds(0.0, 0.0, 1.0, 0.0)


@pytest.fixture(scope="module")
def mars(smoke_market, tmp_path_factory, write_mars):
    pids = sorted(load_market1501(smoke_market).query("split == 'train'")["pid"].unique())
    return write_mars(tmp_path_factory.mktemp("mars") / "MARS", smoke_market, pids[1:])  # one person MARS lacks


def test_mars_training_frames_are_read_and_bad_names_are_named(mars, smoke_market, tmp_path):
    frames = load_mars_train(mars)
    train = load_market1501(smoke_market).query("split == 'train'")
    assert frames.groupby("pid").size().to_dict() == train.groupby("pid").size().iloc[1:].to_dict()
    assert set(frames["split"]) == {"train"} and set(frames["dataset"]) == {"mars"} and set(frames["tracklet"]) == {1}
    assert all((mars / path).is_file() for path in frames["path"])
    bad = shutil.copytree(mars, tmp_path / "bad")
    person = next((bad / "bbox_train").iterdir())
    shutil.copy(next(person.iterdir()), person / "9999C1T0001F001.jpg")  # another person's name in this folder
    with pytest.raises(ValueError, match=r"1 frame name\(s\) .* inside their pid's folder .*9999C1T0001F001.jpg"):
        load_mars_train(bad)
    with pytest.raises(FileNotFoundError, match="missing bbox_train/ under .*expected bbox_train/<pid>/ folders"):
        load_mars_train(tmp_path)
    (tmp_path / "empty" / "bbox_train").mkdir(parents=True)
    with pytest.raises(ValueError, match="no frames in .*bbox_train"):
        load_mars_train(tmp_path / "empty")


@pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="needs mediapipe (make setup)")
def test_the_quantity_set_adds_as_many_mars_frames_per_person_as_posedive_adds(smoke_market, smoke_world, mars, tmp_path,
                                                                              write_mars):
    generator = tmp_path / "generator"
    tiny_generator(image_size=(smoke_world.config.height, smoke_world.config.width), seed=0).save_pretrained(generator)
    augmentation = augment_dataset("market1501", smoke_market, generator, tmp_path / "aug",
                                   config=AugmentConfig(per_id=2, steps=1), gallery_size=4, thresholds=KEEP_ALL,
                                   progress=False)
    result = quantity_exports(augmentation["export"], mars, tmp_path / "table3", seed=0)
    diversity, quantity = augmented_export(result["diversity"]), augmented_export(result["quantity"])
    shared = set(load_mars_train(mars)["pid"])
    for export in (diversity, quantity):
        train = export[export["split"] == "train"]
        assert set(train["pid"]) == shared  # the person MARS lacks is left out
        original = augmented_export(augmentation["export"])
        assert export[export["split"] != "train"].groupby("split").size().equals(
            original[original["split"] != "train"].groupby("split").size())  # Market's query and gallery unchanged
    added = {name: frame[frame["source"] == kind].groupby("pid").size()
             for name, frame, kind in (("diversity", diversity, "generated"), ("quantity", quantity, "extra"))}
    assert added["diversity"].to_dict() == added["quantity"].to_dict() == {pid: 2 for pid in shared}
    assert result["counts"]["generated"].equals(result["counts"]["mars"])
    mapping = {name: pd.read_csv(result[name] / "mapping.csv") for name in ("diversity", "quantity")}
    real = {name: m[m["source"] == "real"].reset_index(drop=True) for name, m in mapping.items()}
    pd.testing.assert_frame_equal(real["diversity"], real["quantity"])  # one baseline for both
    extra = mapping["quantity"][mapping["quantity"]["source"] == "extra"]
    assert extra["path"].str.startswith("bbox_train/").all() and set(extra["dataset"]) == {"mars"}
    again = quantity_exports(augmentation["export"], mars, tmp_path / "again", seed=0)
    assert pd.read_csv(again["quantity"] / "mapping.csv").equals(mapping["quantity"])  # the seed draws the frames
    other = quantity_exports(augmentation["export"], mars, tmp_path / "other", seed=1)
    assert set(pd.read_csv(other["quantity"] / "mapping.csv")["path"]) != set(mapping["quantity"]["path"])

    out = tmp_path / "cli"  # with Table 4's export: all MARS frames of these people instead of their Market images
    assert main(["quantity", "--augmented", str(augmentation["export"]), "--mars-root", str(mars), "--out", str(out),
                 "--all-mars"]) == 0
    assert pd.read_csv(out / "quantity" / "mapping.csv").equals(mapping["quantity"])
    everything = augmented_export(out / "mars")
    assert everything.query("split == 'train'")["source"].eq("extra").all()
    assert len(everything.query("split == 'train'")) == len(load_mars_train(mars))
    pd.testing.assert_frame_equal(*(frame[frame["split"] != "train"].drop(columns="source").reset_index(drop=True)
                                    for frame in (everything, diversity)))  # Market-1501's query and gallery
    assert main(["reid", "--augmented", str(out / "diversity"), str(out / "quantity"), str(out / "mars"), "--preset",
                 "tiny", "--iterations", "2", "--seeds", "0", "--out", str(tmp_path / "reid")]) == 0
    runs = pd.read_csv(tmp_path / "reid" / "reid_runs.csv").set_index("setting")
    assert runs.loc["baseline", "train_images"] == len(real["diversity"].query("split == 'train'"))
    assert runs.loc["posedive", "train_images"] == runs.loc["quantity", "train_images"] > runs.loc["baseline", "train_images"]
    assert runs.loc["mars", "train_images"] == runs.loc["mars", "extra_images"] == len(load_mars_train(mars))
    assert runs.loc["quantity", "extra_images"] == runs.loc["quantity", "train_images"] - runs.loc["baseline", "train_images"]
    with pytest.raises(SystemExit, match="none of the exports .* holds real training images .* the augmentation's export"):
        main(["reid", "--augmented", str(out / "mars"), "--preset", "tiny", "--out", str(tmp_path / "alone")])
    with pytest.raises(SystemExit, match="trains on other people than the baseline .* diversity/ export"):
        main(["reid", "--augmented", str(out / "mars"), str(augmentation["export"]), "--preset", "tiny",
              "--out", str(tmp_path / "everyone")])  # Market's whole training split: one person MARS lacks
    assert _check_same_data_set({"mars": out / "mars", "posedive": out / "diversity"}) == "posedive"  # the baseline's
    quantity_exports(augmentation["export"], mars, out, seed=0)  # without all_mars: the earlier mars/ is removed
    assert sorted(path.name for path in out.iterdir()) == ["diversity", "quantity"]

    few = shutil.copytree(mars, tmp_path / "few")  # one person with a single frame: the others' frames make up the rest
    person = sorted((few / "bbox_train").iterdir())[0]
    for frame in sorted(person.iterdir())[1:]:
        frame.unlink()
    with pytest.warns(UserWarning, match="1 of the quantity set's frames are other people's"):
        short = quantity_exports(augmentation["export"], few, tmp_path / "short", seed=0)
    assert short["counts"]["mars"].sum() == short["counts"]["generated"].sum()
    assert short["counts"].loc[int(person.name), "mars"] == 1
    for other in sorted((few / "bbox_train").iterdir())[1:]:
        shutil.rmtree(other)  # only that person left: nobody to make up the rest
    with pytest.raises(ValueError, match="holds 1 frames of these people, fewer than the 2 images Pose-dIVE added"):
        quantity_exports(augmentation["export"], few, tmp_path / "none", seed=0)
    assert not (tmp_path / "none").exists()
    duke = shutil.copytree(augmentation["export"], tmp_path / "duke")  # as if augmented from DukeMTMC-reID
    relabelled = pd.read_csv(duke / "mapping.csv")
    relabelled["dataset"] = relabelled["dataset"].str.replace("market1501", "dukemtmc")
    relabelled.to_csv(duke / "mapping.csv", index=False)
    with pytest.raises(SystemExit, match="is an augmentation of dukemtmc, not of Market-1501"):
        main(["quantity", "--augmented", str(duke), "--mars-root", str(mars), "--out", str(tmp_path / "d")])
    strangers = write_mars(tmp_path / "strangers", smoke_market, [])  # nobody of Market-1501's training split
    (strangers / "bbox_train" / "9999").mkdir()
    shutil.copy(next((mars / "bbox_train").rglob("*.jpg")), strangers / "bbox_train" / "9999" / "9999C1T0001F001.jpg")
    with pytest.raises(SystemExit, match="no person of .* is in MARS"):
        main(["quantity", "--augmented", str(augmentation["export"]), "--mars-root", str(strangers), "--out", str(out)])
    with pytest.raises(SystemExit, match="lies in .*only read"):
        main(["quantity", "--augmented", str(augmentation["export"]), "--mars-root", str(mars),
              "--out", str(augmentation["export"] / "t3")])
