"""The studies' tables and sweeps, the paper comparison, CMC curves and the from-scratch generator start."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from posedive_lib.analysis.paper_tables import TITLES, claims, comparison_tables, measured_rows, paper_results
from posedive_lib.paths import PROJECT_ROOT, STAGE1_WEIGHTS
from posedive_lib.profiles import PROFILES
from posedive_lib.reid.experiment import plot_cmc, plot_sweep, training_set_key
from posedive_lib.studies import (ABLATION_TABLES, ablation_tables, identity_points, matched_filter_table, per_id_points,
                                  random_subset, reid_config, sweep_table, threshold_points)


def fake_runs(values: dict[str, list[float]], extra: dict[str, int] | None = None) -> pd.DataFrame:
    """One row per setting and seed with the given mAPs (R1 = mAP + 10)."""
    rows = [{"setting": s, "seed": seed, "mAP": v, "R1": v + 10, "extra_images": (extra or {}).get(s, 0),
             "cmc": " ".join(str(min(100.0, v + 10 + k)) for k in range(20))}
            for s, vs in values.items() for seed, v in enumerate(vs)]
    return pd.DataFrame(rows)


def test_ablation_tables_compare_each_setting_with_the_tables_first_row_seed_by_seed(tmp_path):
    runs = fake_runs({"baseline": [50, 60, 55], "viewpoint": [52, 61, 57], "pose": [49, 62, 58],
                      "both": [55, 65, 60], "in_domain": [51, 59, 54], "oracle_in_domain": [56, 66, 58]},
                     extra={"both": 720, "in_domain": 720, "oracle_in_domain": 720})
    tables = ablation_tables(runs)
    assert set(tables) == set(ABLATION_TABLES)
    modes = tables["table2_modes"]
    assert list(modes.index) == ["baseline", "viewpoint", "pose", "both"]
    assert modes.loc["both", "paired_diff_mean"] == pytest.approx(5.0) and modes.loc["both", "better_on_seeds"] == 3
    assert modes.loc["pose", "better_on_seeds"] == 2
    pose_source = tables["table8b_pose_source"]
    assert pose_source.loc["both", "paired_diff_mean"] == pytest.approx(np.mean([4, 6, 6]), abs=0.01)
    quantity = tables["table3_diversity_vs_quantity"]  # the same number of real images of the train distribution
    assert list(quantity.index) == ["baseline", "oracle_in_domain", "in_domain", "both"]
    assert quantity.loc["oracle_in_domain", "extra_images"] == 720 and quantity.loc["both", "better_on_seeds"] == 3
    runs.assign(experiment="ablation").to_csv(tmp_path / "ablation_runs.csv", index=False)
    checked = claims(tmp_path).set_index("compared")["holds_on_seeds"]
    assert checked["both - oracle_in_domain"] == "1/3" and checked["both - in_domain"] == "3/3"  # Tables 3 and 8b
    table3 = measured_rows(tmp_path).query("table == 'table3'").set_index("setting")["mAP"]
    assert table3.to_dict() == {"baseline": "55.0 ± 5.0", "quantity": "60.0 ± 5.3", "diversity": "60.0 ± 5.0"}


def test_sweeps_are_sorted_by_their_parameter_and_drawn_with_the_baseline():
    points = per_id_points("quick")
    assert points["baseline"] == 0 and points["both"] == PROFILES["quick"].augment_per_id
    runs = fake_runs({"baseline": [50, 52, 54], "both_per_id_2": [53, 55, 57], "both": [40, 42, 44]})
    table = sweep_table(runs, {k: v for k, v in points.items() if k in set(runs.setting)}, "per_id")
    assert list(table["per_id"]) == [0, 2, PROFILES["quick"].augment_per_id] and table.loc["both_per_id_2", "mAP"] == 55.0
    assert table.loc["both", "mAP_std"] == pytest.approx(2.0)
    drawn = [line for line in plot_sweep(table, "per_id").axes[0].get_lines() if line.get_marker() == "o"]
    assert [list(line.get_xdata()) for line in drawn] == [[0, 2, PROFILES["quick"].augment_per_id]]  # sorted points
    assert list(drawn[0].get_ydata()) == [52.0, 55.0, 42.0]
    lines = plot_sweep(table, "per_id", baseline={"mAP": 52.0, "R1": 60.0}).axes[1].get_lines()
    assert [list(line.get_ydata()) for line in lines if line.get_linestyle() == "--"] == [[60.0, 60.0]]
    assert threshold_points("quick")["both"] == 0.0 and "both_tau_0.6" in threshold_points("quick")
    identity = identity_points("quick")
    assert identity["both"] == -1.0 and all(-1 < v <= 1 for k, v in identity.items() if k != "both")


def test_filters_are_compared_with_as_many_images_drawn_at_random():
    rows = pd.DataFrame({"path": [f"g{i}.jpg" for i in range(10)], "pid": np.arange(10) % 3})
    subset = random_subset(rows, 4, seed=1)
    assert len(subset) == 4 and subset.index.is_monotonic_increasing and subset.equals(random_subset(rows, 4, seed=1))
    assert not subset.equals(random_subset(rows, 4, seed=2)) and random_subset(rows, 10, seed=1).equals(rows)
    runs = fake_runs({"both_tau_0.3": [50, 52, 51], "both_tau_0.3_random": [49, 53, 50],
                      "both_tau_0.6": [55, 56, 57], "both_tau_0.6_random": [50, 50, 50]},
                     extra={"both_tau_0.3": 185, "both_tau_0.3_random": 185, "both_tau_0.6": 151,
                            "both_tau_0.6_random": 151})
    table = matched_filter_table(runs, "quick")
    assert list(table.index) == list(PROFILES["quick"].filter_taus) and table["extra_images"].tolist() == [185, 151]
    assert table.loc[0.6, "paired_diff_mean"] == pytest.approx(6.0) and table.loc[0.6, "better_on_seeds"] == 3
    assert table.loc[0.3, "better_on_seeds"] == 2 and table.loc[0.3, "mAP_random"] == pytest.approx(50.67)
    unmatched = runs.assign(extra_images=runs["extra_images"].where(runs["setting"] != "both_tau_0.6_random", 480))
    with pytest.raises(ValueError, match=r"both_tau_0.6 and its control both_tau_0.6_random need runs with as many extra"):
        matched_filter_table(unmatched, "quick")


def test_study_reid_config_keeps_the_preset_but_shortens_and_caps_identities():
    config = reid_config(n_ids=5, iterations=40)
    assert (config.iterations, config.checkpoint_every, config.P) == (40, 40, 5)
    assert reid_config(n_ids=500, iterations=1000).P == 16


def test_runs_are_keyed_by_their_training_rows_in_any_order():
    rows = pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.jpg"], "pid": [1, 1, 2], "camid": [0, 1, 0]})
    key = training_set_key(rows)
    assert training_set_key(rows.iloc[::-1]) == key  # same set, other order: the same run
    assert training_set_key(rows.iloc[:2]) != key  # a row less
    assert training_set_key(rows.assign(pid=[1, 2, 2])) != key  # a label changed


def test_cmc_plot_reads_the_cmc_column():
    runs = fake_runs({"baseline": [50, 60], "both": [55, 65]})
    fig = plot_cmc(runs, ["baseline", "both", "absent"])
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and lines[0].get_ydata()[0] == pytest.approx(65.0)


def test_identity_plot_draws_each_score_against_the_length_with_its_target():
    from posedive_lib.analysis.generator_figures import IDENTITY_TARGETS, plot_identity_by_length

    identity = pd.DataFrame({"steps": [0, 2000, 4000], "rank1_generated": [0.2, 0.3, 0.4],
                             "closer_generated": [0.7, 0.8, 0.9]})
    lines = plot_identity_by_length(identity, "steps", "steps").axes[0].get_lines()
    curves = {tuple(line.get_ydata()) for line in lines if len(line.get_xdata()) == 3}
    targets = {line.get_ydata()[0] for line in lines if len(line.get_xdata()) == 2}
    assert curves == {(0.2, 0.3, 0.4), (0.7, 0.8, 0.9)} and targets == set(IDENTITY_TARGETS.values())


def test_paper_numbers_cover_the_compared_tables():
    paper = paper_results()
    for table in TITLES:
        assert (paper["table"] == table).any(), table
    assert set(paper["metric"]) <= {"mAP", "R1"} and paper["value"].between(0, 100).all()


def test_comparison_tables_put_our_runs_beside_the_papers(tmp_path):
    fake_runs({"baseline": [50, 60, 55], "posedive": [52, 64, 57], "oracle": [70, 71, 72]}).assign(
        experiment="reid_main").to_csv(tmp_path / "reid_main_runs.csv", index=False)
    ours = measured_rows(tmp_path)
    assert set(ours["setting"]) == {"baseline", "both"} and ours.loc[ours.setting == "both", "mAP"].item() == "57.7 ± 6.0"
    tables = comparison_tables(tmp_path)
    main = tables["main"]
    assert ("this package", "synthetic world", "tiny ResNet (BoT)") in main.index
    assert main.loc[("paper (real data)", "Market-1501", "CLIP-ReID"), ("mAP", "baseline")] == 89.6
    checked = claims(tmp_path).set_index("claim")
    row = checked.loc["augmentation helps on the shifted test (Table 1)"]
    assert row["mAP_diff_mean"] == pytest.approx(np.mean([2, 4, 2]), abs=0.01) and row["holds_on_seeds"] == "3/3"
    assert "pose augmentation helps (Table 2)" not in checked.index  # no ablation runs in this folder


def test_number_of_images_table_puts_the_per_identity_sweep_beside_the_preprints(tmp_path):
    from posedive_lib.analysis.paper_tables import number_of_images_table

    theirs_only = number_of_images_table(tmp_path)  # no ablation runs yet: the preprint's rows alone
    assert set(theirs_only.index.get_level_values("source")) == {"paper (real data, Diff-ID preprint)"}
    assert theirs_only.loc[("paper (real data, Diff-ID preprint)", "Market-1501", "ResNet-50", 7000), "mAP"] == 71.1
    fake_runs({"baseline": [50, 60, 55], "both_per_id_2": [51, 61, 56], "both": [52, 64, 57], "pose": [1, 2, 3]},
              extra={"both_per_id_2": 240, "both": 480, "pose": 480}).to_csv(tmp_path / "ablation_runs.csv", index=False)
    table = number_of_images_table(tmp_path)
    ours = table.loc[("this package", "synthetic world", "tiny ResNet (BoT)")]
    assert list(ours.index) == [0, 240, 480] and list(table.columns) == ["mAP", "R1"]
    assert ours.loc[480, "mAP"] == "57.7 ± 6.0" and ours.loc[240, "R1"] == "66.0 ± 5.0"  # pose (also 480) is left out


def test_paper_rows_for_a_real_data_set_or_a_custom_split():
    from posedive_lib.analysis.paper_tables import paper_main_table, paper_split_table

    market = paper_main_table("market")  # an alias
    assert market.loc["CLIP-ReID", ("baseline", "mAP")] == 89.6 and ("posedive", "R1") in market.columns
    cam = paper_split_table("cam")
    assert list(cam.index) == ["SOLIDER"] and cam.loc["SOLIDER", ("posedive", "mAP")] == 52.9
    assert paper_split_table("pose").loc["SOLIDER", ("baseline", "R1")] == 76.0
    from posedive_lib.analysis.paper_tables import paper_table

    modes = paper_table("table2", "msmt17")
    assert modes.loc["CLIP-ReID", ("viewpoint", "mAP")] == 70.9 and modes.loc["CLIP-ReID", ("posedive", "mAP")] == 71.0
    assert paper_table("table8b", "duke").loc["ResNet-50", ("in_domain", "R1")] == 73.4
    assert paper_table("table8b", "duke").loc["ResNet-50", ("posedive", "R1")] == 78.7  # external: the full method
    assert paper_table("table8b", "msmt17").empty
    with pytest.raises(ValueError, match="'cam' or 'pose'"):
        paper_split_table("Cam")


def test_bad_paper_file_is_named(tmp_path):
    (tmp_path / "p.csv").write_text("table,value\nmain,1\n")
    with pytest.raises(ValueError, match="lacks columns"):
        paper_results(tmp_path / "p.csv")


def test_scratch_start_keeps_the_vae_and_reinitialises_the_unets(tmp_path):
    import torch

    from posedive_lib.generator.experiment import scratch_start
    from posedive_lib.generator.model import PoseDiveGenerator
    from posedive_lib.generator.sizes import tiny_generator

    trained = tiny_generator(image_size=(64, 32), seed=3)
    with torch.no_grad():
        for p in list(trained.vae.parameters()) + list(trained.denoising_unet.parameters()):
            p.add_(0.01)
    trained.save_pretrained(tmp_path / "pretrained")
    start = PoseDiveGenerator.from_pretrained(scratch_start(tmp_path / "pretrained", tmp_path / "scratch", (64, 32)))
    fresh = tiny_generator(trained.vae, image_size=(64, 32))
    for a, b in zip(start.vae.parameters(), trained.vae.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(next(start.denoising_unet.parameters()), next(trained.denoising_unet.parameters()))
    assert torch.equal(next(start.denoising_unet.parameters()), next(fresh.denoising_unet.parameters()))


def test_fine_tuning_study_compares_generator_lengths_seed_by_seed(tmp_path):
    from posedive_lib.cli import main
    from posedive_lib.studies import fine_tuning_study

    main(["fine-tuning", "--profile", "smoke", "--seeds", "0", "--stage2-steps", "2", "4", "--out", str(tmp_path)])
    runs = pd.read_csv(tmp_path / "generator_fine_tuning_runs.csv")
    assert set(runs["setting"]) == {"baseline", "stage2_2", "stage2_2_tau_0.6", "stage2_4", "stage2_4_tau_0.6"}
    assert (runs.loc[runs["setting"] == "stage2_4", "extra_images"] > 0).all()
    assert (runs.loc[runs["setting"] == "baseline", "extra_images"] == 0).all()
    identity = pd.read_csv(tmp_path / "generator_fine_tuning_identity.csv")
    assert identity["stage2_steps"].tolist() == [2, 4] and identity["rank1_generated"].between(0, 1).all()
    summary = pd.read_csv(tmp_path / "generator_fine_tuning_summary.csv")
    assert summary.loc[summary["setting"] == "baseline", "paired_diff_mean"].item() == 0
    with pytest.raises(ValueError, match="positive step counts"):
        fine_tuning_study(None, "smoke", [0], [400, 0], None)


def test_stage1_length_study_continues_pretraining_then_fine_tunes_each_length(tmp_path):
    from posedive_lib.cli import main
    from posedive_lib.studies import stage1_length_study

    main(["stage1-length", "--profile", "smoke", "--seeds", "0", "--extra-steps", "0", "2", "--out", str(tmp_path),
          "--export-stage1", str(tmp_path / "exported")])
    runs = pd.read_csv(tmp_path / "generator_stage1_length_runs.csv")
    assert set(runs["setting"]) == {"baseline", "stage1_plus_0", "stage1_plus_0_tau_0.6", "stage1_plus_2",
                                    "stage1_plus_2_tau_0.6"}
    assert (runs.loc[runs["setting"] == "stage1_plus_2", "extra_images"] > 0).all()
    identity = pd.read_csv(tmp_path / "generator_stage1_length_identity.csv")
    assert (tmp_path / "generator_stage1_length_identity.png").is_file()
    assert (tmp_path / "generator_stage1_length_grid.png").is_file()  # the longest stage 1's samples
    assert identity["stage1_extra_steps"].tolist() == [0, 2] and identity["rank1_generated"].between(0, 1).all()
    committed = pd.read_csv(PROJECT_ROOT / STAGE1_WEIGHTS / "loss.csv")  # exported: the longest, with its whole loss history
    assert len(pd.read_csv(tmp_path / "exported" / "loss.csv")) == committed["step"].nunique() + 2
    assert (tmp_path / "exported" / "generator.json").is_file()
    with pytest.raises(ValueError, match="step counts >= 0"):
        stage1_length_study(None, "smoke", [0], [-1], STAGE1_WEIGHTS)
