"""Every notebook runs headlessly with papermill at the smoke profile; unchanged steps are skipped."""
from __future__ import annotations

import json

import nbformat
import pandas as pd
import pytest

from posedive_lib.notebooks import ORDER, notebook_path, run_notebook


@pytest.mark.parametrize("name", ORDER)
def test_notebook_has_one_parameters_cell_and_an_explanation(name):
    nb = nbformat.read(notebook_path(name), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "profile" in tagged[0].source and "out_dir" in tagged[0].source
    assert nb.cells[0].cell_type == "markdown" and "Parameters you may change" in nb.cells[0].source


def test_smoke_chain_runs_every_notebook_and_skips_unchanged_steps(tmp_path, capsys):
    from posedive_lib.notebooks import run_chain

    summary = run_chain("smoke", seeds=(0,), results_root=tmp_path)
    out = tmp_path / "smoke"
    for name in ORDER:
        nb = nbformat.read(out / f"{name}.ipynb", as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
        assert not errors, f"{name}: {errors}"
    coverage = pd.read_csv(out / "bias_coverage.csv").set_index("set")
    assert list(coverage.index) == ["train", "augmentation", "train + augmentation"]
    assert coverage.loc["train + augmentation", "images"] == coverage.loc[["train", "augmentation"], "images"].sum()
    for figure in ("bias_viewpoints_poses.png", "controlled_grid.png", "msmt17s_pose.png", "ablation_threshold.png"):
        assert (out / figure).is_file(), figure
    split_sides = pd.read_csv(out / "msmt17s_cam_coverage.csv").set_index("set")  # the paper's Fig. 6 numbers
    assert list(split_sides.index) == ["train", "test"] and split_sides["viewpoint_entropy"].between(0, 1).all()
    numgen = pd.read_csv(out / "paper_number_of_images.csv")  # the preprint's rows and the per-identity sweep
    assert {"paper (real data, Diff-ID preprint)", "this package"} == set(numgen["source"])
    quality = pd.read_csv(out / "quality_statistics.csv")
    assert {"generated_both", "generated_pose", "generated_viewpoint"} <= set(quality["set"]) and (quality["images"] > 0).all()
    assert quality["keypoints_found"].between(0, 1).all() and quality["id_cosine_mean"].between(-1, 1).all()
    identity_filter = pd.read_csv(out / "ablation_identity_filter.csv").sort_values("min_id_cosine")
    assert identity_filter["min_id_cosine"].iloc[0] == -1  # the unfiltered set first; a higher bar keeps fewer images
    assert identity_filter["extra_images"].is_monotonic_decreasing and identity_filter["mAP"].between(0, 100).all()
    matched = pd.read_csv(out / "ablation_threshold_matched.csv")  # filtered against as many random images
    taus = pd.read_csv(out / "ablation_threshold.csv").set_index("setting")
    assert matched["extra_images"].tolist() == [taus.at[f"both_tau_{tau}", "extra_images"] for tau in matched["tau"]]
    table8a = pd.read_csv(out / "scratch_runs.csv").set_index(["setting", "seed"])["mAP"]  # Re-ID on each generator
    ablation = pd.read_csv(out / "ablation_runs.csv").set_index(["setting", "seed"])["mAP"]
    assert set(table8a.index.get_level_values(0)) == {"baseline", "pretrained", "scratch"}
    assert table8a[("pretrained", 0)] == ablation[("both", 0)]  # the notebooks' generator: the same run, reused
    assert list(summary.columns)[:4] == ["experiment", "dataset", "setting", "seed"]
    pd.testing.assert_frame_equal(summary, pd.read_csv(out / "summary.csv"), check_dtype=False)
    assert set(summary["seed"]) == {0}
    assert {"baseline", "oracle"} <= set(summary["setting"]) and summary["mAP"].between(0, 100).all()
    capsys.readouterr()
    run_chain("smoke", seeds=(0,), results_root=tmp_path)
    assert capsys.readouterr().out.count("up to date, skipped") == len(ORDER)


def test_notebook_parameters_are_checked_before_any_output(tmp_path):
    from posedive_lib.notebooks import run_chain, start_notebook

    with pytest.raises(NotImplementedError, match="synthetic world only"):
        start_notebook(tmp_path / "out", dataset="market1501")
    with pytest.raises(ValueError, match="device must be one of"):
        start_notebook(tmp_path / "out", device="tpu")
    with pytest.raises(ValueError, match="device must be one of"):
        run_chain("smoke", results_root=tmp_path, device="tpu")
    assert not any(tmp_path.iterdir())
    assert start_notebook(tmp_path / "out", dataset="market1501", real_data=True).is_dir()


def test_the_generator_notebooks_knobs_are_papermill_parameters():
    nb = nbformat.read(notebook_path("02_generator_training"), as_version=4)
    tagged = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for name in ("stage1_steps", "stage2_steps", "pretrained"):
        assert f"\n{name} = " in f"\n{tagged.source}", name
        later = [c.source for c in nb.cells if c is not tagged and c.cell_type == "code"]
        assert not any(f"\n{name} = " in f"\n{source}" for source in later), f"{name} is overwritten after injection"


def test_unknown_notebook_is_named():
    with pytest.raises(FileNotFoundError, match="01_dataset_bias"):
        notebook_path("99_missing")


def test_bias_notebook_annotates_a_real_data_set_in_market_layout(tmp_path):
    """A Market-1501 folder (the smoke world exported in its layout) goes through mediapipe annotation."""
    from posedive_lib.data.export import export_market_layout
    from posedive_lib.data.synthetic.world import build_world

    world = build_world("smoke", progress=False)
    export_market_layout(world.subset("train", "test"), world.root, tmp_path / "market")
    run_notebook("01_dataset_bias", tmp_path / "out", {"profile": "smoke", "dataset": "market1501",
                                                      "data_root": str(tmp_path / "market")})
    coverage = pd.read_csv(tmp_path / "out" / "bias_coverage.csv").set_index("set")
    train_images = len(world.subset("train"))
    assert 0 < coverage.loc["train", "images"] <= train_images  # images where a person was found
    for column in ("azimuth_entropy", "pose_diversity"):  # 8 gallery conditions at smoke: too few for 2D entropy
        assert coverage.loc["augmentation", column] > coverage.loc["train", column]


def test_real_data_notebook_runs_the_pipeline_on_stand_ins(tmp_path, write_mars):
    """Notebook 08 on a Market-1501 folder, a frames folder and a MARS folder made of the smoke world, the committed
    stage 1."""
    from posedive_lib.data.export import export_market_layout
    from posedive_lib.data.real_datasets import load_mars_train
    from posedive_lib.data.synthetic.world import build_world
    from posedive_lib.data.synthetic.world_conditions import world_conditions
    from posedive_lib.generator.data import load_images, to_uint8
    from posedive_lib.generator.frames import write_clip
    from posedive_lib.notebooks import REAL_DATA_NOTEBOOK
    from posedive_lib.paths import STAGE1_WEIGHTS

    nb = nbformat.read(notebook_path(REAL_DATA_NOTEBOOK), as_version=4)
    assert [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])] and "Parameters you may change" in nb.cells[0].source
    world = build_world("smoke", progress=False)
    export_market_layout(world.subset("train", "test"), world.root, tmp_path / "market")
    train, maps = world.subset("train"), world_conditions(world, "train", progress=False)
    images = to_uint8(load_images(train, world.root)).permute(0, 2, 3, 1).numpy()
    for pid in train["pid"].unique():
        rows = (train["pid"] == pid).to_numpy()
        write_clip(tmp_path / "frames", f"{pid:04d}", images[rows], {k: maps[k][rows] for k in ("depth", "normal", "skeleton")})
    market_pids = sorted(world.subset("train")["pid"].unique())
    mars = write_mars(tmp_path / "mars", tmp_path / "market", market_pids[:-1])  # MARS lacks one person
    out = tmp_path / "out"
    run_notebook(REAL_DATA_NOTEBOOK, out, {
        "dataset": "market1501", "data_root": str(tmp_path / "market"), "frames_root": str(tmp_path / "frames"),
        "start": STAGE1_WEIGHTS, "stage2_steps": 2, "stage2_batch": 2, "per_id": 1, "gallery_size": 4, "sample_steps": 1,
        "tau": 0.0, "reid_preset": "tiny", "reid_iterations": 4, "seeds": [0, 1], "modes": ["both", "viewpoint"],
        "mars_root": str(mars), "all_mars": True})
    executed = nbformat.read(out / f"{REAL_DATA_NOTEBOOK}.ipynb", as_version=4)
    tables = next(c for c in executed.cells if c.get("id") == "cell-13")
    assert "The paper's reported numbers (Tables 1 and 6" in str(tables.outputs)
    assert "The paper's reported numbers (Table 2, pose and viewpoint" in str(tables.outputs)
    assert (out / "stage2" / "generator" / "generator.json").is_file()
    runs = pd.read_csv(out / "reid_runs.csv")
    assert sorted(set(runs["setting"])) == ["baseline", "posedive", "viewpoint"] and sorted(set(runs["seed"])) == [0, 1]
    assert set(pd.read_csv(out / "filter_statistics.csv")["mode"]) == {"both", "viewpoint"}
    assert (out / "augmentation_viewpoint" / "market_layout" / "augmentation.json").is_file()
    kept = pd.read_csv(out / "augmentation" / "filter_decisions.csv")["keep"].sum()
    sizes = runs.groupby("setting")["train_images"].first()
    assert sizes["posedive"] - sizes["baseline"] == kept > 0
    assert set(runs["dataset"]) == {"market1501"} and set(runs["experiment"]) == {"real_main"}
    for name in ("augmentation_grid.png", "reid.png", "reid_cmc.png", "reid_summary.csv", "filter_statistics.csv"):
        assert (out / name).is_file(), name
    table3 = pd.read_csv(out / "table3" / "reid_runs.csv")
    sizes3 = table3.groupby("setting")["train_images"].first()
    assert sorted(sizes3.index) == ["baseline", "mars", "posedive", "quantity"]
    assert sizes3["posedive"] == sizes3["quantity"] and sizes3["mars"] == len(load_mars_train(mars))  # all its frames
    assert sizes3["baseline"] < sizes["baseline"]  # the people MARS has
    assert table3.set_index("setting")["extra_images"].to_dict()["mars"] == sizes3["mars"]  # no Market image in it
    assert "The paper's reported numbers (Table 3" in str(executed.cells[-1].outputs)
    assert "The paper's reported numbers (Table 4" in str(executed.cells[-1].outputs)


def test_real_data_notebook_runs_on_a_custom_split(smoke_market, tmp_path):
    """Notebook 08 with custom_split: the Cam split of the data set, then augmentation and Re-ID on that split, with
    the sweep over images per identity and the filter's random control."""
    import importlib.util

    from posedive_lib.data.real_datasets import load_market1501
    from posedive_lib.notebooks import REAL_DATA_NOTEBOOK
    from posedive_lib.paths import STAGE1_WEIGHTS

    if importlib.util.find_spec("mediapipe") is None:
        pytest.skip("needs mediapipe (make setup)")
    out = tmp_path / "out"
    run_notebook(REAL_DATA_NOTEBOOK, out, {
        "dataset": "market1501", "data_root": str(smoke_market), "custom_split": "cam",
        "split_options": {"half_width": 45, "gap": 0}, "start": STAGE1_WEIGHTS, "per_id": 2, "gallery_size": 4,
        "sample_steps": 1, "tau": 0.0, "sweep_taus": [0.0], "sweep_per_id": [1], "reid_preset": "tiny_cbn",
        "reid_iterations": 2, "seeds": [0]})  # camera-based BN: the split's test cameras adapted to, unlike its train ones
    split = load_market1501(out / "split" / "market_layout")
    runs = pd.read_csv(out / "reid_runs.csv").set_index("setting")
    assert runs.loc["baseline", "train_images"] == (split["split"] == "train").sum()  # trained on the split
    assert runs.loc["posedive", "train_images"] > runs.loc["baseline", "train_images"]
    assert set(runs["dataset"]) == {"market1501_s_cam"}  # named after the split it ran on
    assert runs["mAP"].between(0, 100).all() and (runs["num_valid_queries"] > 0).all()
    assert (out / "split" / "split.png").is_file() and (out / "split" / "split.json").is_file()
    executed = nbformat.read(out / f"{REAL_DATA_NOTEBOOK}.ipynb", as_version=4)
    assert "Table 5, MSMT17-S Cam" in str(next(c for c in executed.cells if c.get("id") == "cell-13").outputs)
    assert "Table 3 needs MARS" in str(executed.cells[-1].outputs)
    sweep = pd.read_csv(out / "reid_sweep_per_id.csv")
    assert sweep["setting"].tolist() == ["baseline", "posedive_per_id_1", "posedive"] and sweep["per_id"].tolist() == [0, 1, 2]
    assert (out / "augmentation" / "market_layout_per_id_1").is_dir() and "Sweep of per_id" in str(executed.cells)
    matched = pd.read_csv(out / "reid_sweep_tau_matched.csv")  # the main export (tau 0) against as many at random
    assert matched["tau"].tolist() == [0] and matched["extra_images"].tolist() == [runs.loc["posedive", "extra_images"]]
    assert "Keypoint filter against as many generated images drawn at random" in str(executed.cells)


def test_real_data_notebook_settings_are_checked_before_any_training(tmp_path):
    from posedive_lib.notebooks import check_real_data_run

    check_real_data_run("market", 0.6, "tiny", None)  # an alias of market1501
    check_real_data_run("msmt17", 0.6, "tiny", None, custom_split="pose", split_options={"clusters": 4})
    for args, message in ((("synthetic", 0.6, "tiny", None), "runs on a real data set"),
                          (("market1501", 1.5, "tiny", None), r"\[0, 1\]"),
                          (("market1501", 0.6, "resnet", None), "unknown Re-ID preset"),
                          (("market1501", 0.6, "clip", None), "needs local CLIP weights")):
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            check_real_data_run(*args)
    for split, options, message in (("side", {}, "must be 'cam' or 'pose'"), ("cam", {"gap": -1}, "gap >= 0"),
                                    (None, {"clusters": 4}, "go with custom_split")):
        with pytest.raises(ValueError, match=message):
            check_real_data_run("msmt17", 0.6, "tiny", None, custom_split=split, split_options=options)
    for modes in ("both", [], ["both", "both"], ["both", "posee"]):
        with pytest.raises(ValueError, match="a list of distinct gallery modes"):
            check_real_data_run("msmt17", 0.6, "tiny", None, modes=modes)
    check_real_data_run("msmt17", 0.6, "tiny", None, per_id=15, sweep_taus=[0.3, 0.9], sweep_per_id=[1, 5, 10])
    for dataset, split, modes, message in (("msmt17", None, ["both"], "goes with dataset market1501"),
                                           ("market1501", "cam", ["both"], "goes with dataset market1501"),
                                           ("market1501", None, ["pose"], "mode 'both' in modes"),
                                           ("market1501", None, ["both"], "missing bbox_train/ under")):
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            check_real_data_run(dataset, 0.6, "tiny", None, custom_split=split, modes=modes, mars_root=str(tmp_path))
    with pytest.raises(ValueError, match="all_mars .* set mars_root to the MARS folder too"):
        check_real_data_run("market1501", 0.6, "tiny", None, all_mars=True)
    with pytest.raises(ValueError, match="all_mars is True or False"):
        check_real_data_run("market1501", 0.6, "tiny", None, mars_root=str(tmp_path), all_mars="yes")
    for taus, counts, message in ((0.3, [], "a list of distinct confidences"), ([0.3, 1.2], [], "a list of distinct"),
                                  ([], [5, 15], r"from 1 to per_id - 1 \(14\)"), ([], [2.5], "whole numbers")):
        with pytest.raises((ValueError, TypeError), match=message):
            check_real_data_run("msmt17", 0.6, "tiny", None, per_id=15, sweep_taus=taus, sweep_per_id=counts)
