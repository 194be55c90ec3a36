"""The main job on the smoke profile writes its figure and table."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from PIL import Image

from posedive_lib.cli import main


def test_run_smoke_profile_writes_gallery(tmp_path):
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path), "--seed", "1", "--workers", "1",
                 "--skip-notebooks"]) == 0
    assert (tmp_path / "synthetic_identities.png").is_file() and (tmp_path / "synthetic_viewpoints.png").is_file()
    table = pd.read_csv(tmp_path / "condition_gallery.csv")
    assert len(table) == 4 and table["pose_id"].is_unique
    assert table["elevation"].between(0, 30).all() and table["azimuth"].between(0, 360).all()
    assert {"gait", "external"} <= {pid.split(":")[0] for pid in table["pose_id"]}
    with Image.open(tmp_path / "condition_gallery.png") as image:
        assert image.size[0] > 300 and image.size[1] > 300
    assert not list(tmp_path.glob("*.tmp.*"))


def test_run_passes_its_seeds_to_every_notebook_and_rejects_repeated_ones(tmp_path, monkeypatch):
    from posedive_lib import notebooks

    calls = []
    monkeypatch.setattr(notebooks, "run_chain", lambda *args, **kwargs: calls.append((args, kwargs)) or pd.DataFrame())
    assert main(["run", "--profile", "smoke", "--out", str(tmp_path / "five"), "--workers", "1", "--seeds", "0", "1", "2", "3", "4"]) == 0
    assert calls[0][1]["seeds"] == (0, 1, 2, 3, 4) and calls[0][1]["run_name"] == "five"
    for wrong in (["1", "1"], ["-2"]):
        with pytest.raises(SystemExit, match="--seeds must be distinct non-negative"):
            main(["run", "--profile", "smoke", "--out", str(tmp_path / "bad"), "--seeds", *wrong])
    assert len(calls) == 1 and not (tmp_path / "bad").exists()


@pytest.mark.parametrize("argv, problem", [
    (["oracle-check", "--iterations", "0"], "--iterations must be at least 1"),
    (["oracle-check", "--seeds", "0", "0"], "--seeds must be distinct"),
    (["fine-tuning", "--stage2-steps", "400", "0"], "--stage2-steps must be at least 1"),
    (["generator", "--stage2-steps", "0"], "--stage2-steps must be at least 1"),
    (["generator", "--vae-steps", "0"], "--vae-steps must be at least 1"),
    (["stage1-length", "--extra-steps", "-1"], "--extra-steps must be non-negative"),
    (["split-controls", "--seeds", "-1"], "--seeds must be distinct non-negative"),
    (["run", "--workers", "-3"], "--workers must be at least 1"),
    (["run", "--seed", "-1"], "--seed must be non-negative"),
    (["fine-tuning", "--pretrained", "results"], "--pretrained results: no saved generator there"),
    (["generator", "--pretrained", "models/tiny-stage1", "--export-stage1"], "--export-stage1 set.* drop one"),
    (["generator", "--pretrained", "models/tiny-stage1", "--stage1-steps", "9"], "--stage1-steps set.* drop one"),
    (["oracle-check", "--out", "results"], "--out results: give the path of a CSV file"),
])
def test_impossible_arguments_are_refused_before_any_work(argv, problem, monkeypatch):
    from posedive_lib.data.synthetic import world

    monkeypatch.setattr(world, "build_world", lambda *a, **k: pytest.fail("built a world before checking arguments"))
    with pytest.raises(SystemExit, match=problem):
        main(argv)


def test_library_errors_are_one_line(monkeypatch, capsys):
    from posedive_lib import cli

    def bad_input(*args):
        raise FileNotFoundError("data root /nowhere is not a folder")

    monkeypatch.setattr(cli, "split_controls", bad_input)
    with pytest.raises(SystemExit, match="^posedive split-controls: data root /nowhere is not a folder\n"):
        main(["split-controls"])
    monkeypatch.setenv("POSEDIVE_TRACEBACK", "1")
    with pytest.raises(FileNotFoundError):
        main(["split-controls"])


def test_unknown_profile_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--profile", "huge"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("pretrained, package_record", [("models/tiny-stage1", True), ("models/tiny-stage1-2000", False),
                                                        (None, False)])
def test_generator_command_records_only_the_committed_generator_as_the_package_benchmark(
        tmp_path, monkeypatch, pretrained, package_record):
    from posedive_lib import benchmarking, cli
    from posedive_lib.generator import experiment

    monkeypatch.setattr(benchmarking, "results_dir", lambda: tmp_path / "results")
    monkeypatch.setattr(experiment, "generator_experiment",  # the judged generator itself is tested elsewhere
                        lambda *args: {"details": {"rank1_generated": 0.5}, "run_dir": tmp_path})
    path = cli.generator("quick", pretrained=pretrained, out=tmp_path / "figures")
    package = tmp_path / "results" / "benchmarks" / "generator_identity_rank1.json"
    assert path == (package if package_record else tmp_path / "figures" / "generator_identity_rank1.json")
    assert package.is_file() == package_record


def test_camera_bn_compares_camera_based_with_plain_batch_norm_seed_by_seed_with_and_without_augmentation(tmp_path):
    from dataclasses import replace

    from posedive_lib import cli
    from posedive_lib.data.synthetic.world import build_world
    from posedive_lib.profiles import PROFILES
    from posedive_lib.reid.experiment import run_folder
    from posedive_lib.studies import _runs_dir, reid_config

    cli.camera_bn("smoke", [0, 1], tmp_path)
    runs = pd.read_csv(tmp_path / "camera_bn_runs.csv")
    settings = [f"{norm}{extra}" for norm in ("bn", "cbn") for extra in ("", "_posedive", "_oracle")]
    assert sorted(zip(runs["setting"], runs["seed"])) == sorted((s, seed) for s in settings for seed in (0, 1))
    assert runs["mAP"].between(0, 100).all() and runs["num_valid_queries"].gt(0).all()
    images = runs.groupby("setting")["train_images"].first()
    assert (images > images["bn"]).to_dict() == {s: "_" in s for s in settings}  # the augmented sets add images
    summary = pd.read_csv(tmp_path / "camera_bn_summary.csv").set_index("setting")
    mAP = runs.pivot(index="seed", columns="setting", values="mAP")
    assert summary.loc["cbn", "paired_diff_mean"] == pytest.approx((mAP["cbn"] - mAP["bn"]).mean(), abs=0.01)
    # the gains table pairs each training set with the same norm's train-split runs
    gains = pd.read_csv(tmp_path / "camera_bn_gains.csv").set_index(["norm", "training_set"])
    assert gains.loc[("cbn", "posedive"), "paired_diff_mean"] == pytest.approx(
        (mAP["cbn_posedive"] - mAP["cbn"]).mean(), abs=1e-3)
    share = (mAP["bn_posedive"] - mAP["bn"]) / (mAP["bn_oracle"] - mAP["bn"])
    assert gains.loc[("bn", "posedive"), "oracle_share_mean"] == pytest.approx(share.mean(), abs=1e-3)
    # plain BN trains where the other studies' baseline does (the same run, reused); camera-based BN elsewhere
    world = build_world("smoke", progress=False)
    train = world.subset("train")
    plain = reid_config(train["pid"].nunique(), PROFILES["smoke"].reid_iterations)  # as main_study trains it
    for config in (plain, replace(plain, backbone="tiny_cbn")):
        run = run_folder(train, _runs_dir("smoke", world, config), 0)
        assert json.loads((run / "train_config.json").read_text())["backbone"] == config.backbone


def test_split_controls_writes_control_settings_and_identity_quality_per_split(tmp_path):
    from posedive_lib import cli

    cli.split_controls("smoke", [0], tmp_path)
    summary = pd.read_csv(tmp_path / "msmt17s_controls_summary.csv")
    for kind in ("cam", "pose"):
        assert {"baseline", "posedive", "oracle", "in_domain", "posedive_1_per_id"} == set(summary.loc[summary["split"] == kind, "setting"])
    runs = pd.read_csv(tmp_path / "msmt17s_controls_runs.csv")
    assert set(runs["experiment"]) == {"msmt17s_cam", "msmt17s_pose"} and runs["mAP"].between(0, 100).all()
    # one image per identity is a subset of the Pose-dIVE set: fewer training rows
    sizes = runs[runs["experiment"] == "msmt17s_pose"].set_index("setting")["train_images"]
    assert sizes["baseline"] < sizes["posedive_1_per_id"] < sizes["posedive"]
    quality = pd.read_csv(tmp_path / "msmt17s_controls_quality.csv").set_index("set")
    assert len(quality) == 9 and quality["id_cosine_median"].between(-1, 1).all()
