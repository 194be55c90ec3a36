"""The README's result tables are rendered from the committed runs and must match them."""
import json
from pathlib import Path

import pandas as pd
import pytest

from posedive_lib.analysis.readme_tables import (RENDERERS, notebook_minutes, reid_main, render_readme, stale_blocks,
                                                 update_readme)
from posedive_lib.paths import PROJECT_ROOT


def test_readme_tables_match_the_committed_runs():
    text = (PROJECT_ROOT / "README.md").read_text()
    assert "<!-- table: reid_main -->" in text
    assert stale_blocks(text, PROJECT_ROOT) == [], "run `python -m posedive_lib.cli readme-tables` and commit README.md"


def _write_main_runs(run: Path, maps: dict[str, list[float]]) -> None:
    rows = [{"setting": setting, "seed": seed, "mAP": value, "R1": value + 10, "train_images": 100}
            for setting, values in maps.items() for seed, value in enumerate(values)]
    run.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(run / "reid_main_runs.csv", index=False)


def test_reid_main_pairs_seeds(tmp_path):
    _write_main_runs(tmp_path, {"baseline": [40, 50, 60], "posedive": [42, 49, 63], "quantity": [40, 50, 60],
                                "oracle": [50, 60, 70]})
    table = reid_main(tmp_path)
    posedive = next(line for line in table.splitlines() if "Pose-dIVE" in line)
    # paired changes +2, -1, +3: mean +1.3, std 2.1, better on 2 of 3 seeds
    assert "| 51.3 +- 10.7 | 61.3 | +1.3 +- 2.1 | 2/3 |" in posedive
    assert "baseline: biased train split (100 images) | 50.0 +- 10.0" in table


def test_camera_bn_table_pairs_seeds_within_and_across_batch_norms(tmp_path):
    from posedive_lib.analysis.readme_tables import camera_bn

    maps = {("bn", "baseline"): [40, 50, 60], ("bn", "posedive"): [41, 53, 60], ("bn", "oracle"): [50, 60, 70],
            ("cbn", "baseline"): [44, 49, 62], ("cbn", "posedive"): [46, 50, 66], ("cbn", "oracle"): [54, 59, 72]}
    rows = [{"setting": norm if data == "baseline" else f"{norm}_{data}", "norm": norm, "training_set": data,
             "seed": seed, "mAP": value, "R1": value + 10} for (norm, data), values in maps.items()
            for seed, value in enumerate(values)]
    (tmp_path / "results/experiments").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(tmp_path / "results/experiments/camera_bn_runs.csv", index=False)
    lines = {line.split(" | ")[0]: line for line in camera_bn(tmp_path / "results/experiments").splitlines()}
    # train split: cbn - bn = +4, -1, +2; Pose-dIVE: within bn +1, +3, 0, within cbn +2, +1, +4, cbn - bn +5, -3, +6
    assert lines["| train split"].endswith("| 50.0 +- 10.0 |  | 51.7 +- 9.3 |  | +1.7 +- 2.5 (2/3) |")
    assert lines["| + Pose-dIVE"].endswith("| 51.3 +- 9.6 | +1.3 +- 1.5 (2/3) | 54.0 +- 10.6 | +2.3 +- 1.5 (3/3) "
                                           "| +2.7 +- 4.9 (2/3) |")


def test_update_rewrites_stale_blocks_and_check_leaves_them(tmp_path):
    _write_main_runs(tmp_path / "results/quick", {"baseline": [40, 50, 60], "posedive": [41, 51, 61],
                                                  "quantity": [40, 50, 60], "oracle": [50, 60, 70]})
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- table: reid_main -->\n| old |\n<!-- /table -->\nend\n")
    assert update_readme(readme, check=True) == ["reid_main"]
    assert "| old |" in readme.read_text()
    assert update_readme(readme) == ["reid_main"]
    text = readme.read_text()
    assert "| old |" not in text and "+1.0 +- 0.0 | 3/3" in text and text.endswith("<!-- /table -->\nend\n")
    assert update_readme(readme, check=True) == []


def test_unknown_block_and_missing_runs_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="no renderer"):
        render_readme("<!-- table: nonsense -->\n<!-- /table -->", tmp_path)
    with pytest.raises(FileNotFoundError, match="reid_main_runs.csv is missing"):
        RENDERERS["reid_main"](tmp_path)


def test_notebook_minutes_reads_papermill_durations(tmp_path):
    for name, seconds in (("01_a.ipynb", 120.0), ("02_b.ipynb", 30.0)):
        (tmp_path / name).write_text(json.dumps({"metadata": {"papermill": {"duration": seconds}}, "cells": []}))
    table = notebook_minutes(tmp_path)
    assert "| `01_a.ipynb` | 2.0 |" in table and "| all notebooks | 2.5 |" in table
    with pytest.raises(FileNotFoundError, match="no executed notebooks"):
        notebook_minutes(tmp_path / "empty")


def test_generator_study_table_pairs_seeds_and_bolds_the_met_target(tmp_path):
    folder = tmp_path / "results/experiments"
    folder.mkdir(parents=True)
    pd.DataFrame({"stage2_steps": [400, 1200], "rank1_generated": [0.2, 0.6], "closer_generated": [0.7, 0.9],
                  "cos_same_generated": [0.2, 0.5], "cos_other_generated": [0.03, 0.01]}
                 ).to_csv(folder / "generator_fine_tuning_identity.csv", index=False)
    maps = {"baseline": [40, 50, 60], "stage2_400": [38, 47, 59], "stage2_400_tau_0.6": [41, 50, 61],
            "stage2_1200": [42, 49, 63], "stage2_1200_tau_0.6": [40, 50, 60]}
    extra = {"baseline": 0, "stage2_400": 480, "stage2_400_tau_0.6": 118, "stage2_1200": 480, "stage2_1200_tau_0.6": 122}
    pd.DataFrame([{"setting": s, "seed": i, "mAP": m, "extra_images": extra[s]} for s, values in maps.items()
                  for i, m in enumerate(values)]).to_csv(folder / "generator_fine_tuning_runs.csv", index=False)
    lines = RENDERERS["fine_tuning"](tmp_path).splitlines()
    assert lines[2] == "| 400 | 20.0% | 70.0% | 0.20 / 0.03 | -2.0 +- 1.0 (0/3) | 118 images, +0.7 +- 0.6 (2/3) |"
    assert lines[3] == "| 1,200 | **60.0%** | **90.0%** | 0.50 / 0.01 | +1.3 +- 2.1 (2/3) | 122 images, +0.0 +- 0.0 (0/3) |"
    with pytest.raises(FileNotFoundError, match="generator_identity_rank1.json is missing"):
        RENDERERS["generator_identity"](tmp_path)


def test_cells_are_rounded_once(tmp_path):
    # paired changes -1.35, -1.35, -1.341: mean -1.347, which rounds to -1.3 (-1.35 after a first rounding gives -1.4)
    _write_main_runs(tmp_path, {"baseline": [40, 50, 60], "posedive": [38.65, 48.65, 58.659], "quantity": [40, 50, 60],
                                "oracle": [50, 60, 70]})
    posedive = next(line for line in reid_main(tmp_path).splitlines() if "Pose-dIVE" in line)
    assert "| -1.3 +- 0.0 | 0/3 |" in posedive
