"""Condition gallery modes, per-identity generation and oracle rendering, and resuming a killed run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from posedive_lib.augment.condition_gallery import GalleryConfig, build_condition_gallery, plan_gallery
from posedive_lib.augment.generate import AugmentConfig, augment, plan_augmentation


@pytest.fixture(scope="module")
def train(smoke_world):
    return smoke_world.subset("train")


@pytest.fixture(scope="module")
def gallery(train, tmp_path_factory):
    return build_condition_gallery(GalleryConfig(size=6), cache=tmp_path_factory.mktemp("gallery"), progress=False)


def test_gallery_modes_draw_poses_and_viewpoints_as_the_paper_ablations(train):
    both = plan_gallery(GalleryConfig(size=300, mode="both"))
    assert set(both["pose_source"]) == {"external"}
    assert both["elevation"].between(0, 30).all() and both["azimuth"].between(0, 360).all()
    assert both["azimuth"].std() > 80  # spread over the full circle
    viewpoint = plan_gallery(GalleryConfig(size=300, mode="viewpoint"))
    assert set(viewpoint["pose_source"]) == {"gait", "standing"}
    pose = plan_gallery(GalleryConfig(size=300, mode="pose"), train)
    in_domain = plan_gallery(GalleryConfig(size=300, mode="in_domain"), train)
    train_views = set(zip(train["elevation"].round(3), train["azimuth"].round(3) % 360))
    for plan in (pose, in_domain):  # viewpoints are the training set's own
        assert set(zip(plan["elevation"], plan["azimuth"])) <= train_views
    assert set(in_domain["pose_source"]) == {"gait", "standing"}
    with pytest.raises(ValueError, match="annotate"):
        plan_gallery(GalleryConfig(size=3, mode="pose"), train.drop(columns=["azimuth"]))
    with pytest.raises(ValueError, match="mode"):
        GalleryConfig(mode="everything")


def test_gallery_is_rendered_once_and_cached(gallery, tmp_path, monkeypatch):
    assert gallery.depth.shape == (6, 128, 64) and gallery.skeleton.shape == (6, 128, 64, 3)
    assert (gallery.depth > 0).mean(axis=(1, 2)).min() > 0.03  # a body in every map
    assert {"condition_id", "pose_id", "elevation", "azimuth"} <= set(gallery.table.columns)
    cache = tmp_path / "cache"
    first = build_condition_gallery(GalleryConfig(size=6), cache=cache, progress=False)
    assert len(list(cache.glob("gallery-*.npz"))) == 1

    def no_rendering(*args, **kwargs):
        raise AssertionError("the cached gallery was rendered again")

    import posedive_lib.render.pipeline as pipeline

    monkeypatch.setattr(pipeline, "ConditionRenderer", no_rendering)
    again = build_condition_gallery(GalleryConfig(size=6), cache=cache, progress=False)
    for name in ("depth", "normal", "skeleton"):
        np.testing.assert_array_equal(getattr(again, name), getattr(first, name))
        np.testing.assert_array_equal(getattr(again, name), getattr(gallery, name))  # same config, same maps
    pd.testing.assert_frame_equal(again.table, first.table)
    with pytest.raises(AssertionError, match="rendered again"):  # another gallery is not in the cache
        build_condition_gallery(GalleryConfig(size=6, seed=1), cache=cache, progress=False)


def test_plan_is_seeded_and_gives_every_identity_the_same_number(train, gallery):
    plan = plan_augmentation(train, gallery, AugmentConfig(per_id=5, seed=3), "generated")
    assert plan.groupby("pid").size().eq(5).all() and plan["path"].is_unique
    assert (train["pid"].to_numpy()[plan["reference"]] == plan["pid"].to_numpy()).all()
    assert plan.equals(plan_augmentation(train, gallery, AugmentConfig(per_id=5, seed=3), "generated"))
    assert not plan.equals(plan_augmentation(train, gallery, AugmentConfig(per_id=5, seed=4), "generated"))


def test_oracle_mode_renders_the_true_identities(smoke_world, train, gallery, tmp_path, jpeg_pixels):
    from posedive_lib.data.synthetic.world import OracleRenderer

    manifest = augment(train, smoke_world.root, gallery, tmp_path, AugmentConfig(per_id=2, batch=4),
                       oracle=OracleRenderer(smoke_world.config), tag="oracle", progress=False)
    assert len(manifest) == 2 * train["pid"].nunique() and (manifest["source"] == "oracle").all()
    assert set(manifest["parent"]) <= set(train["path"])
    assert manifest["condition_id"].isin(gallery.table["condition_id"]).all()
    assert all((tmp_path / p).is_file() for p in manifest["path"])
    from posedive_lib.augment.condition_gallery import gallery_pose_sources

    oracle = OracleRenderer(smoke_world.config)
    for row in manifest.iloc[[0, -1]].itertuples():  # each image: its person, in its condition, seen by its camera
        condition = gallery.table.set_index("condition_id").loc[row.condition_id]
        pose = gallery_pose_sources(int(condition["source_seed"]))[condition["pose_source"]][int(condition["pose_index"])]
        saved = jpeg_pixels(tmp_path / row.path)
        drawn = {pid: jpeg_pixels(oracle.render([pid], [pose], condition["elevation"], condition["azimuth"], row.camid,
                                                row.seed).images[0]) for pid in (row.pid, row.pid % 3 + 1)}
        np.testing.assert_array_equal(drawn[row.pid], saved)
        assert np.abs(drawn[row.pid % 3 + 1] - saved).mean() > 5  # another person in the same shot
    with pytest.raises(ValueError, match="exactly one"):
        augment(train, smoke_world.root, gallery, tmp_path / "x", AugmentConfig())


@pytest.mark.parametrize("damage", ["cut inside a row", "empty journal", "cut header"])
def test_resume_survives_a_journal_cut_anywhere(smoke_world, train, gallery, tmp_path, damage):
    from posedive_lib.data.synthetic.world import OracleRenderer

    oracle, config = OracleRenderer(smoke_world.config), AugmentConfig(per_id=2, batch=4)
    assert augment(train, smoke_world.root, gallery, tmp_path, config, oracle=oracle, tag="oracle", progress=False,
                   stop_after_batches=2) is None
    journal = tmp_path / "journal" / "process000.csv"
    text = journal.read_text()
    if damage == "cut inside a row":  # killed while writing the last row, inside its quoted keypoints
        last = text.splitlines()[-1]
        journal.write_text(text[: len(text) - len(last) - 1 + last.index("[[") + 20])
        redone = tmp_path / last.split(",")[0]
        redone.unlink()  # its image must be made again, since its row is incomplete
    else:
        journal.write_text("" if damage == "empty journal" else text[:15])
    manifest = augment(train, smoke_world.root, gallery, tmp_path, config, oracle=oracle, tag="oracle", progress=False)
    expected = plan_augmentation(train, gallery, config, "oracle")
    assert all((tmp_path / p).is_file() for p in expected["path"])
    assert manifest["path"].tolist() == expected["path"].tolist()
    assert manifest["seed"].tolist() == expected["seed"].tolist() and manifest["keypoints"].notna().all()


def test_augmentation_folder_of_another_plan_is_refused(smoke_world, train, gallery, tmp_path):
    from posedive_lib.data.synthetic.world import OracleRenderer

    oracle = OracleRenderer(smoke_world.config)
    augment(train, smoke_world.root, gallery, tmp_path, AugmentConfig(per_id=1, batch=8), oracle=oracle, progress=False)
    for other in (AugmentConfig(per_id=2, batch=8), AugmentConfig(per_id=1, batch=8, seed=9)):
        with pytest.raises(ValueError, match="another plan.*delete that folder or give another out_root"):
            augment(train, smoke_world.root, gallery, tmp_path, other, oracle=oracle, progress=False)
    with pytest.raises(ValueError, match="another plan"):
        augment(train.iloc[::2], smoke_world.root, gallery, tmp_path, AugmentConfig(per_id=1, batch=8), oracle=oracle,
                progress=False)
    again = augment(train, smoke_world.root, gallery, tmp_path, AugmentConfig(per_id=1, batch=16), oracle=oracle,
                    progress=False)  # the batch size does not change the images
    assert len(again) == train["pid"].nunique()
    unfinished = tmp_path / "unfinished"
    assert augment(train, smoke_world.root, gallery, unfinished, AugmentConfig(per_id=1, batch=2), oracle=oracle,
                   progress=False, stop_after_batches=1) is None
    with pytest.raises(ValueError, match="another plan"):  # resuming with another seed is refused too
        augment(train, smoke_world.root, gallery, unfinished, AugmentConfig(per_id=1, batch=2, seed=4), oracle=oracle,
                progress=False)
    (unfinished / "plan.json").write_text("{not json")
    with pytest.raises(ValueError, match="plan.json is damaged"):
        augment(train, smoke_world.root, gallery, unfinished, AugmentConfig(per_id=1, batch=2), oracle=oracle,
                progress=False)


def test_augmentation_input_errors(train, gallery):
    with pytest.raises(ValueError, match=r"lacks columns \['camid'\]"):
        plan_augmentation(train.drop(columns="camid"), gallery, AugmentConfig(), "generated")
    with pytest.raises(ValueError, match="whole numbers of at least 1"):
        AugmentConfig(per_id=1.5)
    with pytest.raises(ValueError, match="whole numbers of at least 1"):
        AugmentConfig(per_id=0)


RUN = """
import sys
from posedive_lib.augment.condition_gallery import GalleryConfig, build_condition_gallery
from posedive_lib.augment.generate import AugmentConfig, augment
from posedive_lib.data.synthetic.world import build_world
from posedive_lib.generator.model import PoseDiveGenerator
world_root, gallery_cache, generator_dir, out = sys.argv[1:5]
world = build_world("smoke", root=world_root, workers=1, progress=False)
gallery = build_condition_gallery(GalleryConfig(size=6), cache=gallery_cache, progress=False)
augment(world.subset("train"), world.root, gallery, out, AugmentConfig(per_id=3, steps=2, batch=1),
        generator=PoseDiveGenerator.from_pretrained(generator_dir).eval(), progress=False)
"""


def test_killed_generation_resumes_with_exactly_the_expected_images(smoke_world, train, gallery, tmp_path):
    from posedive_lib.generator.model import PoseDiveGenerator
    from posedive_lib.generator.sizes import tiny_generator

    tiny_generator().save_pretrained(tmp_path / "generator")
    out, script = tmp_path / "augmented", tmp_path / "run.py"
    script.write_text(textwrap.dedent(RUN))
    gallery_cache = tmp_path / "gallery"
    build_condition_gallery(GalleryConfig(size=6), cache=gallery_cache, progress=False)
    process = subprocess.Popen([sys.executable, str(script), str(smoke_world.root), str(gallery_cache),
                                str(tmp_path / "generator"), str(out)], env={**os.environ, "PYTHONHASHSEED": "1"})
    journal = out / "journal" / "process000.csv"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) >= 4:  # header + 3 images
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written = len(pd.read_csv(journal))
    expected = plan_augmentation(train, gallery, AugmentConfig(per_id=3), "generated")
    assert 3 <= written < len(expected), "the run was not killed part-way"
    assert not (out / "manifest.csv").exists()
    manifest = augment(train, smoke_world.root, gallery, out, AugmentConfig(per_id=3, steps=2, batch=1),
                       generator=PoseDiveGenerator.from_pretrained(tmp_path / "generator").eval(), progress=False)
    assert manifest["path"].tolist() == expected["path"].tolist()
    files = sorted(p.relative_to(out).as_posix() for p in (out / "generated").glob("*.jpg"))
    assert files == sorted(expected["path"]) and not list(out.rglob(".*tmp*"))
    assert (manifest["parent"].to_numpy() == train["path"].to_numpy()[expected["reference"]]).all()
    assert manifest["pid"].tolist() == expected["pid"].tolist() and (manifest["source"] == "generated").all()


def test_set_sizes_count_images_per_identity():
    from posedive_lib.augment.experiment import set_sizes

    sets = {"a": pd.DataFrame({"pid": [1, 1, 2, 2]}), "b": pd.DataFrame({"pid": [5, 5, 5]})}
    sizes = set_sizes(sets).set_index("set")
    assert sizes.loc["a"].tolist() == [4, 2, 2] and sizes.loc["b"].tolist() == [3, 1, 3]


def test_controlled_grid_shows_each_identity_in_the_same_conditions(smoke_world, tmp_path, monkeypatch):
    from posedive_lib.analysis.generator_figures import plot_controlled_grid
    from posedive_lib.augment.experiment import controlled_grid
    from posedive_lib.generator.sizes import tiny_generator

    monkeypatch.setenv("POSEDIVE_CACHE", str(tmp_path / "cache"))
    tiny_generator().save_pretrained(tmp_path / "generator")
    config = AugmentConfig(steps=2, batch=8)
    grid = controlled_grid(smoke_world, tmp_path / "generator", gallery_size=6, config=config, n_ids=3, n_conditions=2)
    h, w = smoke_world.config.height, smoke_world.config.width
    assert grid["generated"].shape == grid["oracle"].shape == (3, 2, h, w, 3) and grid["skeletons"].shape == (2, h, w, 3)
    assert len(set(grid["pids"])) == 3 and len(set(grid["condition_ids"])) == 2 and len(set(grid["seeds"])) == 2
    train = smoke_world.subset("train")
    assert all(pid in set(train["pid"]) for pid in grid["pids"])
    # down a column: other people in one condition; across a row: one person in other conditions
    oracle = grid["oracle"].astype(float)
    assert np.abs(oracle[0, 0] - oracle[1, 0]).mean() > 2 and np.abs(oracle[0, 0] - oracle[0, 1]).mean() > 2
    assert np.abs(grid["generated"][0, 0].astype(float) - grid["generated"][1, 0]).mean() > 0.5  # only the reference differs
    from posedive_lib.augment import generate

    asked = []

    class Recording(generate._Generate):  # the cells the generator is asked for: rows pid by pid, a seed per column
        def __call__(self, parents, root, gallery, chunk):
            asked.append(chunk.copy())
            return super().__call__(parents, root, gallery, chunk)

    monkeypatch.setattr(generate, "_Generate", Recording)
    again = controlled_grid(smoke_world, tmp_path / "generator", gallery_size=6, config=config, n_ids=3, n_conditions=2)
    cells = asked[0]
    assert cells["seed"].tolist() == list(grid["seeds"]) * 3 and cells["pid"].tolist() == list(np.repeat(grid["pids"], 2))
    assert np.array_equal(again["generated"], grid["generated"]) and np.array_equal(again["oracle"], grid["oracle"])
    figure = plot_controlled_grid(grid)
    assert len(figure.axes) == (1 + 3) * (1 + 2 * 2)
    with pytest.raises(ValueError, match="conditions"):
        controlled_grid(smoke_world, tmp_path / "generator", gallery_size=6, config=config, n_ids=3, n_conditions=7)
