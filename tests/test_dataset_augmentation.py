"""Augmenting a real data set on disk (generate, filter, export) on a Market-1501 stand-in made of the smoke world."""
from __future__ import annotations

import importlib.util
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from posedive_lib.augment.dataset_augmentation import augment_dataset
from posedive_lib.augment.filtering import FilterThresholds
from posedive_lib.augment.generate import AugmentConfig
from posedive_lib.cli import main
from posedive_lib.data.real_datasets import load_market1501
from posedive_lib.generator.sizes import tiny_generator

pytestmark = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None, reason="needs mediapipe (make setup)")
KEEP_ALL = FilterThresholds(0.0, 0.0, 1.0, 0.0)


@pytest.fixture(scope="module")
def market(smoke_market):
    """The smoke world as a Market-1501 folder (conftest)."""
    return smoke_market


@pytest.fixture(scope="module")
def generator_dir(smoke_world, tmp_path_factory):
    folder = tmp_path_factory.mktemp("gen") / "generator"
    tiny_generator(image_size=(smoke_world.config.height, smoke_world.config.width), seed=0).save_pretrained(folder)
    return folder


def test_a_real_data_set_is_augmented_filtered_and_exported(market, generator_dir, tmp_path):
    real = load_market1501(market)
    train = real[real["split"] == "train"]
    config = AugmentConfig(per_id=2, steps=1, batch=8)
    result = augment_dataset("market1501", market, generator_dir, tmp_path / "out", config=config, gallery_size=4,
                             thresholds=KEEP_ALL, progress=False)
    generated = result["generated"]
    assert len(generated) == 2 * train["pid"].nunique()
    assert sorted(generated["pid"].unique()) == sorted(train["pid"].unique())
    assert generated["parent"].isin(train["path"]).all() and set(generated["source"]) == {"generated"}
    assert all((tmp_path / "out" / "generated" / p).is_file() for p in generated["path"])
    decisions = pd.read_csv(tmp_path / "out" / "filter_decisions.csv")
    assert len(decisions) == len(generated) and decisions["keep"].all()
    assert {"kp_ref_min", "kp_gen_mean", "keep_reference"} <= set(decisions.columns)
    exported = load_market1501(result["export"])
    counts = exported.groupby("split").size().to_dict()
    assert counts == {"train": len(train) + len(generated), "query": int((real.split == "query").sum()),
                      "gallery": int((real.split == "gallery").sum())}
    assert sorted(exported.loc[exported.split == "train", "pid"].unique()) == sorted(train["pid"].unique())
    mapping = pd.read_csv(result["export"] / "mapping.csv")
    assert (mapping["source"] == "generated").sum() == len(generated)
    assert set(mapping["dataset"]) == {"market1501", "market1501-posedive"}

    stamps = [(tmp_path / "out" / "generated" / p).stat().st_mtime_ns for p in generated["path"]]
    strict = augment_dataset("market1501", market, generator_dir, tmp_path / "out", config=config, gallery_size=4,
                             thresholds=FilterThresholds(tau_ref=1.0), progress=False)  # generation reused
    assert [(tmp_path / "out" / "generated" / p).stat().st_mtime_ns for p in generated["path"]] == stamps
    assert strict["generated"]["path"].tolist() == generated["path"].tolist() and strict["kept"].empty
    assert (load_market1501(strict["export"]).split == "train").sum() == len(train)
    assert json.loads((tmp_path / "out" / "generated" / "sampling.json").read_text()) == {"precision": "cpu float32"}
    other = tmp_path / "other_generator"
    tiny_generator(image_size=strict["gallery"].depth.shape[1:3], seed=1).save_pretrained(other)
    with pytest.raises(ValueError, match="another plan .*generator"):
        augment_dataset("market", market, other, tmp_path / "out", config=config, gallery_size=4, progress=False)


def test_a_folder_begun_in_another_precision_is_named_when_resumed(market, generator_dir, tmp_path):
    folder = tmp_path / "out" / "generated"
    folder.mkdir(parents=True)
    (folder / "sampling.json").write_text(json.dumps({"precision": "cuda bfloat16"}))  # begun on a GPU
    with pytest.warns(UserWarning, match="begun on cuda bfloat16 and resumes on cpu float32"):
        augment_dataset("market1501", market, generator_dir, tmp_path / "out", config=AugmentConfig(per_id=1, steps=1),
                        gallery_size=4, thresholds=KEEP_ALL, export=False, progress=False)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # finished: reused, nothing sampled, nothing mixed
        augment_dataset("market1501", market, generator_dir, tmp_path / "out", config=AugmentConfig(per_id=1, steps=1),
                        gallery_size=4, thresholds=KEEP_ALL, export=False, progress=False)


def test_augmented_runs_are_keyed_by_content_not_by_name_or_recorded_mode(tmp_path):
    """An export's runs keep the key they had before augmentation.json recorded the mode (and under any name)."""
    import hashlib

    from posedive_lib.reid.dataset_study import _data_key

    record = {"plan": "0123abcd", "thresholds": {"tau_ref": 0.6, "tau_tgt": 0.6, "eps": 0.4}, "kept": 3}
    mapping = "file,split,export_pid,path,pid,camid,dataset,source\nbounding_box_train/a.jpg,train,1,a.jpg,1,1,m,real\n"
    for name, written in (("old", record), ("new", {"mode": "pose", **record})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mapping.csv").write_text(mapping)
        (tmp_path / name / "augmentation.json").write_text(json.dumps(written, indent=1))
    before = hashlib.sha1(b"posedive")  # the key as the first version computed it: the files' bytes
    before.update(mapping.encode() + json.dumps(record, indent=1).encode())
    keys = {_data_key(tmp_path / name, setting, True) for name in ("old", "new") for setting in ("posedive", "pose")}
    assert keys == {before.hexdigest()[:10]}
    record["kept"] = 4  # another augmentation: another key
    (tmp_path / "new" / "augmentation.json").write_text(json.dumps(record, indent=1))
    assert _data_key(tmp_path / "new", "pose", True) not in keys


def test_keypoints_of_images_of_several_sizes_are_estimated_one_by_one(tmp_path):
    from PIL import Image

    from posedive_lib.augment.keypoints import estimate_files

    class Sizes:  # stand-in estimator: confidence = image height / 100, batches recorded
        calls = []

        def estimate(self, images):
            self.calls.append(len(images))
            keypoints = np.zeros((len(images), 17, 3), np.float32)
            keypoints[..., 2] = images.shape[1] / 100
            return {"keypoints": keypoints, "found": np.ones(len(images), bool)}

    for name, height in (("a.jpg", 20), ("b.jpg", 40), ("c.jpg", 40)):
        Image.new("RGB", (10, height)).save(tmp_path / name)
    estimator = Sizes()
    mixed = estimate_files(estimator, ["a.jpg", "b.jpg", "c.jpg"], tmp_path)
    assert mixed["keypoints"][:, 0, 2].tolist() == pytest.approx([0.2, 0.4, 0.4]) and estimator.calls == [1, 1, 1]
    same = estimate_files(estimator, ["b.jpg", "c.jpg"], tmp_path)
    assert len(same["found"]) == 2 and estimator.calls[-1] == 2  # one size: one batch


def test_modes_that_keep_the_training_viewpoints_estimate_them_first(market, generator_dir, tmp_path):
    from posedive_lib.augment.keypoints import annotated

    real = load_market1501(market)
    found = annotated(real[real["split"] == "train"].reset_index(drop=True), market, progress=False)
    found = found[found["kp_found"].astype(bool)]
    with pytest.warns(UserWarning, match=f"{len(real[real.split == 'train']) - len(found)} of .* training images have no person"):
        result = augment_dataset("market1501", market, generator_dir, tmp_path / "out", mode="pose",
                                 config=AugmentConfig(per_id=1, steps=1), gallery_size=4, thresholds=KEEP_ALL,
                                 export=False, progress=False)
    generated = result["generated"]
    assert result["export"] is None and generated["parent"].isin(found["path"]).all()
    viewpoints = set(zip(found["elevation"].round(2), found["azimuth"].round(2) % 360))
    assert set(zip(generated["elevation"].round(2), generated["azimuth"].round(2))) <= viewpoints


def test_cli_augments_and_names_bad_input(market, generator_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["augment", "--dataset", "market1501", "--data-root", str(market), "--generator", str(generator_dir),
                 "--out", str(out), "--per-id", "1", "--steps", "1", "--gallery-size", "4", "--tau", "0",
                 "--no-export"]) == 0
    assert "the keypoint filter (tau 0.0) kept" in capsys.readouterr().out
    assert not (out / "market_layout").exists() and (out / "filter_decisions.csv").is_file()
    common = ["--dataset", "market1501", "--data-root", str(market), "--out", str(tmp_path / "x")]
    with pytest.raises(SystemExit, match="--generator .*no saved generator there"):
        main(["augment", *common, "--generator", str(tmp_path)])
    with pytest.raises(SystemExit, match="--per-id must be at least 1"):
        main(["augment", *common, "--generator", str(generator_dir), "--per-id", "0"])
    with pytest.raises(SystemExit, match="--tau must lie in"):
        main(["augment", *common, "--generator", str(generator_dir), "--tau", "1.5"])
    with pytest.raises(SystemExit, match="unknown data set 'market2000'"):
        main(["augment", "--dataset", "market2000", "--data-root", str(market), "--out", str(tmp_path / "x"),
              "--generator", str(generator_dir)])
    with pytest.raises(SystemExit, match="augment: .*nowhere"):
        main(["augment", "--dataset", "market1501", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x"),
              "--generator", str(generator_dir)])
    assert not (tmp_path / "x").exists()


def test_reid_compares_the_baseline_with_the_augmented_export_seed_by_seed(market, generator_dir, tmp_path):
    from posedive_lib.reid.dataset_study import augmented_export

    result = augment_dataset("market1501", market, generator_dir, tmp_path / "aug", config=AugmentConfig(per_id=2, steps=1),
                             gallery_size=4, thresholds=KEEP_ALL, progress=False)
    export = result["export"]
    manifest = augmented_export(export)
    assert (manifest["source"] == "generated").sum() == len(result["kept"]) > 0
    assert set(manifest.loc[manifest["split"] != "train", "source"]) == {"real"}
    out = tmp_path / "reid"
    from transformers import ResNetConfig, ResNetModel

    backbone = tmp_path / "resnet"  # a backbone weights folder in the transformers format, as --pretrained takes
    ResNetModel(ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                             layer_type="basic")).save_pretrained(backbone)
    argv = ["reid", "--augmented", str(export), "--preset", "tiny", "--iterations", "4", "--seeds", "0", "1", "--out",
            str(out), "--pretrained", str(backbone)]
    assert main(argv) == 0
    assert json.loads(next((out / "runs").rglob("train_config.json")).read_text())["pretrained_path"] == str(backbone)
    runs = pd.read_csv(out / "reid_runs.csv")
    assert sorted(zip(runs["setting"], runs["seed"])) == [("baseline", 0), ("baseline", 1), ("posedive", 0), ("posedive", 1)]
    real = load_market1501(market)
    sizes = runs.groupby("setting")["train_images"].first().to_dict()
    assert sizes == {"baseline": int((real.split == "train").sum()), "posedive": int((real.split == "train").sum()) + len(result["kept"])}
    summary = pd.read_csv(out / "reid_summary.csv").set_index("setting")
    assert summary.loc["baseline", "paired_diff_mean"] == 0 and (out / "reid.png").is_file() and (out / "reid_cmc.png").is_file()
    assert set(runs["dataset"]) == {"market1501"}
    folders = {p.parent.parent.parent.name for p in (out / "runs").rglob("model.safetensors")}
    assert len(folders) == 2  # one runs folder per setting
    other = augment_dataset("market1501", market, generator_dir, tmp_path / "aug1", config=AugmentConfig(per_id=1, steps=1),
                            gallery_size=4, thresholds=KEEP_ALL, progress=False)  # another augmentation
    assert main([*argv[:2], str(other["export"]), *argv[3:]]) == 0
    again = {p.parent.parent.parent.name for p in (out / "runs").rglob("model.safetensors")}
    assert len(again) == 3 and folders < again  # the baseline's runs reused, posedive's trained anew
    with pytest.raises(SystemExit, match="both augmentations in mode 'both': name them"):
        main([*argv[:3], str(other["export"]), *argv[3:]])
    viewpoint = augment_dataset("market1501", market, generator_dir, tmp_path / "aug2", mode="viewpoint",
                                config=AugmentConfig(per_id=1, steps=1), gallery_size=4, thresholds=KEEP_ALL, progress=False)
    assert main([*argv[:3], str(viewpoint["export"]), *argv[3:]]) == 0  # the paper's Table 2: one setting per mode
    modes = pd.read_csv(out / "reid_runs.csv")
    assert sorted(set(modes["setting"])) == ["baseline", "posedive", "viewpoint"]
    assert pd.read_csv(out / "reid_summary.csv")["setting"].tolist() == ["baseline", "posedive", "viewpoint"]
    trained = {p.parent.parent.parent.name for p in (out / "runs").rglob("model.safetensors")}
    assert len(trained) == 4  # only the viewpoint setting trained: the baseline's and posedive's runs reused
    assert main(["reid", "--augmented", f"full={export}", f"view={viewpoint['export']}", *argv[3:]]) == 0
    renamed = pd.read_csv(out / "reid_runs.csv").set_index(["setting", "seed"])
    assert {p.parent.parent.parent.name for p in (out / "runs").rglob("model.safetensors")} == trained  # renamed: reused
    assert renamed.loc[("full", 0), "mAP"] == modes.set_index(["setting", "seed"]).loc[("posedive", 0), "mAP"]
    with pytest.raises(SystemExit, match="name every folder"):
        main(["reid", "--augmented", f"full={export}", str(viewpoint["export"]), *argv[3:]])
    with pytest.raises(SystemExit, match=r"each name once, got \['a', 'a'\]"):
        main(["reid", "--augmented", f"a={export}", f"a={viewpoint['export']}", *argv[3:]])
    with pytest.raises(SystemExit, match="typo has no mapping.csv: pass the market_layout/ folder"):
        main(["reid", "--augmented", str(export), str(tmp_path / "typo"), *argv[3:]])
    with pytest.raises(SystemExit, match="one export is given under two names"):
        main(["reid", "--augmented", f"a={export}", f"b={export}", *argv[3:]])
    import shutil

    foreign = shutil.copytree(viewpoint["export"], tmp_path / "foreign")  # as if exported from another data set
    mapping = pd.read_csv(foreign / "mapping.csv")
    mapping.loc[mapping["source"] == "real", "path"] += ".other"
    mapping.to_csv(foreign / "mapping.csv", index=False)
    with pytest.raises(SystemExit, match=r"the exports of \['view'\] hold other real images than that of 'full'"):
        main(["reid", "--augmented", f"full={export}", f"view={foreign}", *argv[3:]])
    assert main(["reid", "--dataset", "market1501", "--data-root", str(market), "--preset", "tiny", "--iterations", "4",
                 "--seeds", "0", "--out", str(tmp_path / "base")]) == 0
    base = pd.read_csv(tmp_path / "base" / "reid_runs.csv")
    assert base["setting"].tolist() == ["baseline"] and not (tmp_path / "base" / "reid_summary.csv").exists()
    with pytest.raises(SystemExit, match="pass --augmented .* or --dataset and --data-root"):
        main(["reid", "--dataset", "market1501", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="--preset 'resnet': use one of"):
        main(["reid", "--augmented", str(export), "--preset", "resnet", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="--augmented holds the data set already"):
        main(["reid", "--augmented", str(export), "--dataset", "market1501", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="--pretrained: .*none has no config.json"):
        main(["reid", "--augmented", str(export), "--pretrained", str(tmp_path / "none"), "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="--pretrained: .*resnet is a ResNet with .*but the resnet50 backbone is"):
        main(["reid", "--augmented", str(export), "--preset", "bot", "--pretrained", str(backbone), "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="--pretrained: the clip_vit_b16 backbone needs local CLIP weights"):
        main(["reid", "--augmented", str(export), "--preset", "clip", "--out", str(tmp_path / "x")])
    with pytest.raises(SystemExit, match="has no mapping.csv"):
        main(["reid", "--augmented", str(tmp_path / "base"), "--preset", "tiny", "--out", str(tmp_path / "x")])
    none_kept = augment_dataset("market1501", market, generator_dir, tmp_path / "aug", config=AugmentConfig(per_id=2, steps=1),
                                gallery_size=4, thresholds=FilterThresholds(tau_ref=1.0), progress=False)
    assert none_kept["kept"].empty
    with pytest.raises(SystemExit, match="holds no generated images .* lower --tau"):  # not the baseline a second time
        main(["reid", "--augmented", str(none_kept["export"]), "--preset", "tiny", "--iterations", "4", "--out", str(out)])


def test_sweep_points_are_exported_from_the_same_images_and_compared_as_the_supplementary_sweeps(
        market, generator_dir, tmp_path, capsys):
    """``--sweep-taus`` / ``--sweep-per-id``: one export per point from the main export's images and keypoints, named
    by its point in `reid`, which tabulates and plots Re-ID against tau and against images per identity."""
    from posedive_lib.augment.filtering import apply_thresholds
    from posedive_lib.paths import STAGE1_WEIGHTS

    out = tmp_path / "aug"
    config = AugmentConfig(per_id=3, steps=1)  # the CLI's below, whose images it makes (stage 1 draws people)
    first = augment_dataset("market1501", market, STAGE1_WEIGHTS, out, config=config, gallery_size=4,
                            thresholds=FilterThresholds.at(0.0), progress=False, sweep_per_id=[2])
    confidence = first["decisions"][["kp_ref_min", "kp_target_mean", "kp_gen_mean"]].min(axis=1)[first["decisions"]["keep"]]
    tau = float(np.floor(confidence.max() * 100) / 100)  # a threshold that keeps some images and drops others
    assert 0 < tau and 0 < apply_thresholds(first["decisions"], FilterThresholds.at(tau))["keep"].sum() < len(first["kept"])
    (out / "market_layout_per_id_7").mkdir()  # as if left by an earlier run
    argv = ["augment", "--dataset", "market1501", "--data-root", str(market), "--generator", STAGE1_WEIGHTS,
            "--out", str(out), "--per-id", "3", "--steps", "1", "--gallery-size", "4", "--tau", "0"]
    with pytest.warns(UserWarning, match=r"sweep points \['tau_1'\] keep no generated image"):
        assert main([*argv, "--sweep-taus", "0", str(tau), "1", "--sweep-per-id", "1", "2"]) == 0
    printed = capsys.readouterr().out
    assert "sweep point per_id_1" in printed and "sweep point tau 0 is the main export's threshold" in printed
    decisions = pd.read_csv(out / "filter_decisions.csv")
    assert decisions["path"].tolist() == first["decisions"]["path"].tolist()  # the same images
    folders = sorted(p.name for p in out.glob("market_layout*"))
    assert folders == sorted(["market_layout", "market_layout_per_id_1", "market_layout_per_id_2", "market_layout_tau_0_random",
                              f"market_layout_tau_{tau:g}", f"market_layout_tau_{tau:g}_random"])  # tau 1 kept none
    kept = decisions[decisions["keep"]]
    for n in (1, 2):
        variant = out / f"market_layout_per_id_{n}"
        record = json.loads((variant / "augmentation.json").read_text())
        assert record["variant"] == f"per_id_{n}" and record["per_id"] == n and record["mode"] == "both"
        mapping = pd.read_csv(variant / "mapping.csv")
        generated = mapping[mapping["source"] == "generated"]
        assert len(generated) == record["kept"] == (kept["slot"] < n).sum() > 0
        assert (generated.groupby("pid").size() <= n).all()
        assert (mapping["source"] == "real").sum() == len(load_market1501(market))  # the whole data set, once
    expected_tau = apply_thresholds(decisions, FilterThresholds.at(tau))
    mapping = pd.read_csv(out / f"market_layout_tau_{tau:g}" / "mapping.csv")
    assert sorted(mapping.loc[mapping["source"] == "generated", "path"]) == sorted(expected_tau.loc[expected_tau["keep"], "path"])
    for name, count in (("tau_0", len(kept)), (f"tau_{tau:g}", expected_tau["keep"].sum())):  # as many, at random
        control = out / f"market_layout_{name}_random"
        record = json.loads((control / "augmentation.json").read_text())
        assert record["variant"] == f"{name}_random" and record["thresholds"] is None and record["kept"] == count
        drawn = pd.read_csv(control / "mapping.csv").query("source == 'generated'")["path"]
        assert len(drawn) == count and set(drawn) <= set(decisions["path"])
    assert set(pd.read_csv(out / "market_layout_tau_0_random" / "mapping.csv").query("source == 'generated'")["path"]) != set(
        kept["path"])  # drawn from every generated image, not the filter's choice

    runs_dir = tmp_path / "reid"
    reid = ["--preset", "tiny", "--iterations", "2", "--seeds", "0", "1", "--out", str(runs_dir)]
    assert main(["reid", "--augmented", *[str(out / name) for name in folders], *reid]) == 0
    runs = pd.read_csv(runs_dir / "reid_runs.csv")
    assert set(runs["setting"]) == {"baseline", "posedive", "posedive_per_id_1", "posedive_per_id_2", f"posedive_tau_{tau:g}",
                                    "posedive_tau_0_random", f"posedive_tau_{tau:g}_random"}
    per_id = pd.read_csv(runs_dir / "reid_sweep_per_id.csv")
    assert per_id["per_id"].tolist() == [0, 1, 2, 3]
    assert per_id["setting"].tolist() == ["baseline", "posedive_per_id_1", "posedive_per_id_2", "posedive"]
    assert per_id["extra_images"].tolist() == [0, *[(kept["slot"] < n).sum() for n in (1, 2)], len(kept)]
    mean = runs.groupby("setting")["mAP"].mean().round(2)
    assert per_id.set_index("setting")["mAP"].to_dict() == mean[per_id["setting"]].to_dict()
    taus = pd.read_csv(runs_dir / "reid_sweep_tau.csv")
    assert taus["tau"].tolist() == [0, tau] and taus["extra_images"].tolist() == [len(kept), expected_tau["keep"].sum()]
    assert (runs_dir / "reid_sweep_per_id.png").is_file() and (runs_dir / "reid_sweep_tau.png").is_file()
    matched = pd.read_csv(runs_dir / "reid_sweep_tau_matched.csv")  # each filter against its random control
    assert matched["tau"].tolist() == [0, tau] and matched["extra_images"].tolist() == taus["extra_images"].tolist()
    by_seed = runs.pivot(index="seed", columns="setting", values="mAP")
    for row, filtered, control in zip(matched.itertuples(), ["posedive", f"posedive_tau_{tau:g}"],
                                      ["posedive_tau_0_random", f"posedive_tau_{tau:g}_random"]):
        diff = by_seed[filtered] - by_seed[control]
        assert row.mAP_filtered == mean[filtered] and row.paired_diff_mean == round(diff.mean(), 2)
        assert row.better_on_seeds == (diff > 0).sum() and row.seeds == 2
    printed = capsys.readouterr().out
    assert "reid_sweep_tau:" in printed and "reid_sweep_tau_matched:" in printed
    assert "reid_sweep_tau.csv and .png" in printed and "reid_sweep_tau_matched.csv and .png" not in printed  # no plot

    assert main(["reid", "--augmented", str(out / "market_layout"), *reid]) == 0  # runs reused, stale sweeps removed
    assert not list(runs_dir.glob("reid_sweep_*"))
    other = augment_dataset("market1501", market, STAGE1_WEIGHTS, tmp_path / "aug1", config=replace(config, seed=1),
                            gallery_size=4, thresholds=FilterThresholds.at(0.0), progress=False, sweep_per_id=[1])
    with pytest.warns(UserWarning, match="'both' exports come from 2 augmentations"):  # never one curve of two
        assert main(["reid", "--augmented", f"a={out / 'market_layout'}", f"b={other['variants']['per_id_1']}", *reid]) == 0
    assert not list(runs_dir.glob("reid_sweep_*"))
    for extra, message in ((["--sweep-per-id", "3"], r"from 1 to per_id - 1 \(2\)"),
                           (["--sweep-taus", "0.3", "0.3"], "distinct confidences in"),
                           (["--sweep-taus", "1.5"], r"in \[0, 1\]"),
                           (["--sweep-per-id", "1", "--no-export"], "which --no-export skips")):
        with pytest.raises(SystemExit, match=message):
            main([*argv[:8], str(tmp_path / "x"), *argv[9:], *extra])
    with pytest.raises(SystemExit, match="needs per_id of at least 2"):
        main([*argv[:8], str(tmp_path / "x"), "--per-id", "1", "--sweep-per-id", "1"])
    assert not (tmp_path / "x").exists()


def test_a_filter_is_paired_with_its_own_control_and_a_mismatch_is_warned_not_fatal():
    """A sweep tau that names the same folder as the main export's tau (0.1234568 and 0.1234567) pairs its control with
    the sweep point, not the main export; a control of another size is skipped with a warning, after training."""
    from posedive_lib.reid.dataset_study import matched_tables

    rows = []
    for setting, variant, tau, extra, maps in (
            ("baseline", None, None, 0, [40, 41]), ("posedive", None, 0.1234567, 10, [45, 46]),
            ("posedive_tau_0.123457", "tau_0.123457", 0.1234568, 8, [47, 44]),
            ("posedive_tau_0.123457_random", "tau_0.123457_random", None, 8, [44, 44])):
        rows += [{"setting": setting, "variant": variant, "tau": tau, "extra_images": extra, "seed": seed, "mAP": m,
                  "mode": None if setting == "baseline" else "both", "plan": None if setting == "baseline" else "p"}
                 for seed, m in enumerate(maps)]
    runs = pd.DataFrame(rows)
    table = matched_tables(runs)["tau_matched"]
    assert table["tau"].tolist() == [0.1234568] and table["extra_images"].tolist() == [8]
    assert table["mAP_filtered"].tolist() == [45.5] and table["paired_diff_mean"].tolist() == [1.5]
    resized = runs.assign(extra_images=runs["extra_images"].where(runs["variant"] != "tau_0.123457_random", 9))
    with pytest.warns(UserWarning, match="no matched filter table for the 'both' exports: .* as many extra images"):
        assert matched_tables(resized) == {}
