"""Every notebook runs headlessly with papermill at the smoke profile; unchanged steps are skipped."""
from __future__ import annotations

import json

import nbformat
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
    assert (out / "bias_coverage.csv").is_file() and (out / "bias_viewpoints_poses.png").is_file()
    assert (out / "summary.csv").is_file() and list(summary.columns)[:4] == ["experiment", "dataset", "setting", "seed"]
    capsys.readouterr()
    run_chain("smoke", seeds=(0,), results_root=tmp_path)
    assert capsys.readouterr().out.count("up to date, skipped") == len(ORDER)


def test_unknown_notebook_is_named():
    with pytest.raises(FileNotFoundError, match="01_dataset_bias"):
        notebook_path("99_missing")
