"""Coverage numbers of the bias analysis and the paired summaries of Re-ID experiments."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from posedive_lib.analysis.bias import coverage_table, normalised_entropy, pose_diversity, viewpoint_histogram
from posedive_lib.data.manifest import encode_keypoints
from posedive_lib.reid.experiment import oracle_gain_share, plot_settings


def frame(azimuths, elevations, spread=0.0, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (17, 2))
    keypoints = base[None] + spread * rng.normal(0, 1, (len(azimuths), 17, 2))
    keypoints = np.concatenate([keypoints, np.ones((len(azimuths), 17, 1))], -1)
    return pd.DataFrame({"azimuth": azimuths, "elevation": elevations, "keypoints": encode_keypoints(keypoints)})


def test_entropy_is_zero_for_one_bin_and_one_for_uniform():
    assert normalised_entropy(np.array([[5, 0], [0, 0]])) == 0
    assert normalised_entropy(np.ones((3, 4))) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="empty"):
        normalised_entropy(np.zeros(3))


def test_uniform_cameras_cover_more_than_front_back_ones():
    rng = np.random.default_rng(0)
    biased = frame(rng.choice([0.0, 180.0], 500) + rng.normal(0, 10, 500), rng.uniform(0, 10, 500), spread=0.05)
    uniform = frame(rng.uniform(0, 360, 500), rng.uniform(0, 30, 500), spread=0.5)
    table = coverage_table({"biased": biased, "uniform": uniform}).set_index("set")
    assert table.loc["uniform", "viewpoint_entropy"] > table.loc["biased", "viewpoint_entropy"] + 0.3
    assert table.loc["uniform", "pose_diversity"] > 3 * table.loc["biased", "pose_diversity"]
    assert viewpoint_histogram(uniform).sum() == 500
    with pytest.raises(ValueError, match="annotate"):
        pose_diversity(uniform.drop(columns=["keypoints"]))


def test_oracle_gain_share_is_paired_by_seed():
    runs = pd.DataFrame({"setting": ["baseline", "aug", "oracle"] * 2, "seed": [0, 0, 0, 1, 1, 1],
                         "mAP": [50, 55, 60, 40, 50, 50], "R1": [1, 2, 3, 4, 5, 6]})
    share = oracle_gain_share(runs, "baseline", "aug", "oracle")
    assert share["per_seed"] == {0: 0.5, 1: 1.0} and share["mean"] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="not in results"):
        oracle_gain_share(runs, "baseline", "missing", "oracle")
    figure = plot_settings(runs, ["baseline", "aug", "oracle", "absent"])  # a setting without runs is left out
    mAP_axes = figure.axes[0]
    assert [bar.get_height() for bar in mAP_axes.patches] == [45, 52.5, 55]  # bars: the mean over seeds
    assert [list(line.get_ydata()) for line in mAP_axes.get_lines()] == [[50, 55, 60], [40, 50, 50]]  # a line per seed
    assert [tick.get_text() for tick in mAP_axes.get_xticklabels()] == ["baseline", "aug", "oracle"]
