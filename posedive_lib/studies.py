"""The paper's Re-ID experiments on the synthetic world, as the notebooks run them.

- :func:`augmentation_study`, :func:`filter_study`, :func:`identity_statistics` (notebook 3): the generated
  and oracle sets, their keypoint filtering and their identity quality.
- :func:`main_study` (notebook 4, paper Table 1): baseline, + Pose-dIVE, + quantity, + oracle renders.
- :func:`camera_bn_study` (``cli camera-bn``, Table 7): plain against camera-based batch norm, each on the
  train split, + Pose-dIVE and + oracle renders.
- :func:`split_study` (notebook 5, Table 5): MSMT17-S-style Cam and Pose splits of the world's diverse
  test identities; baseline, + Pose-dIVE and + oracle renders, trained on the split's train side.
- :func:`ablation_study` (notebook 6, Tables 2, 3, 8b and supplementary Figs. 2 and 4): gallery modes,
  diversity versus quantity, images per identity, filter thresholds, on the world's biased train split.
- :func:`scratch_study` (notebook 6, Table 8a): pretrained versus from-scratch generator, judged by identity.
- :func:`fine_tuning_study` (not in the paper): generator fine-tuning length (stage-2 steps), judged by
  identity and by the Re-ID models its augmentation trains, unfiltered and keypoint-filtered.
- :func:`stage1_length_study` (not in the paper): the same for stage 1 ("pretraining") continued for more steps.

Each study names its training sets (settings), trains every one with the same seeds
(:func:`~.reid.experiment.run_settings`, compared seed by seed) and returns one row per setting and seed.
Re-ID runs are cached by configuration and training rows, so a re-run only evaluates and the studies
share the runs they have in common (baseline, ``both``, ``in_domain``).
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pandas as pd

from .augment.experiment import augmentation_set, filter_statistics
from .augment.filtering import random_subset
from .augment.generate import AugmentConfig
from .data.synthetic.world import SyntheticWorld
from .paths import cache_dir, config_key
from .profiles import profile_settings
from .reid.experiment import (matched_control_table, oracle_gain_share, paired_summary,  # noqa: F401
                              run_settings, sweep_table)  # notebook 6 imports sweep_table here
from .reid.train import PRESETS, TrainConfig

# The identity scores of generated images that the generator studies report (see generator.identity).
GENERATED_SCORES = ("rank1_generated", "closer_generated", "cos_same_generated", "cos_other_generated")

# Settings of the ablation study shown together, with the paper's table each reproduces.
ABLATION_TABLES = {
    "table2_modes": ("baseline", "viewpoint", "pose", "both"),
    "table3_diversity_vs_quantity": ("baseline", "oracle_in_domain", "in_domain", "both"),
    "table8b_pose_source": ("in_domain", "both"),
}


def reid_config(n_ids: int, iterations: int) -> TrainConfig:
    """The tiny Re-ID preset for ``iterations`` steps, with at most ``n_ids`` identities per batch."""
    config = PRESETS["tiny"]
    return replace(config, iterations=iterations, checkpoint_every=min(config.checkpoint_every, iterations),
                   P=min(config.P, n_ids))


def augment_config(profile: str, seed: int) -> AugmentConfig:
    settings = profile_settings(profile)
    return AugmentConfig(per_id=settings.augment_per_id, steps=settings.sample_steps, seed=seed)


def _runs_dir(profile: str, world: SyntheticWorld, reid: TrainConfig) -> Path:
    """Where the studies' Re-ID runs live: one folder per world and Re-ID configuration, so a training set
    that two studies share (e.g. the baseline, or ``both`` = notebook 4's ``posedive``) trains once."""
    return cache_dir() / "runs" / f"{profile}-{world.config.key()}-{config_key(reid, length=8)}"


def _training_sets(train: pd.DataFrame, extra: dict[str, pd.DataFrame]) -> dict:
    """``baseline`` (``train``) and ``train + rows`` for every named extra set."""
    sets = {"baseline": lambda: train}
    sets.update({name: (lambda rows=rows: pd.concat([train, rows], ignore_index=True)) for name, rows in extra.items()})
    return sets


def main_study(world: SyntheticWorld, profile: str, seeds: list[int], generator_dir: str | os.PathLike,
               progress: bool = False) -> pd.DataFrame:
    """Baseline, + Pose-dIVE (``posedive``), + in-domain generated images (``quantity``), + oracle renders."""
    settings = profile_settings(profile)
    train, test = world.subset("train"), world.subset("test")
    config = augment_config(profile, seeds[0])
    extra = {
        "posedive": augmentation_set(world, "both", config, settings.augment_gallery_size, generator_dir, progress),
        "quantity": augmentation_set(world, "in_domain", config, settings.augment_gallery_size, generator_dir, progress),
        "oracle": augmentation_set(world, "both", config, settings.augment_gallery_size, None, progress),
    }
    reid = reid_config(train["pid"].nunique(), settings.reid_iterations)
    runs_dir = _runs_dir(profile, world, reid)
    runs = run_settings(_training_sets(train, extra), test, world.root, runs_dir, seeds, reid, progress=progress)
    return runs.assign(experiment="reid_main", dataset="synthetic")


def camera_bn_study(world: SyntheticWorld, profile: str, seeds: list[int], generator_dir: str | os.PathLike,
                    progress: bool = False) -> pd.DataFrame:
    """Plain batch norm (``bn``, the other studies' Re-ID model) against camera-based batch norm (``cbn``), each
    trained on the train split (``<norm>``), + Pose-dIVE (``<norm>_posedive``) and + oracle renders
    (``<norm>_oracle``), notebook 4's sets, with the same seeds (the paper's Table 7 pairs CBN with Pose-dIVE).
    The ``bn`` runs are notebook 4's, reused. The world's test set adds cameras the train split never shows, each
    with its own look. Rows carry ``norm`` and ``training_set`` (``baseline``, ``posedive``, ``oracle``)."""
    settings = profile_settings(profile)
    train, test = world.subset("train"), world.subset("test")
    config = augment_config(profile, seeds[0])
    sets = _training_sets(train, {
        "posedive": augmentation_set(world, "both", config, settings.augment_gallery_size, generator_dir, progress),
        "oracle": augmentation_set(world, "both", config, settings.augment_gallery_size, None, progress)})
    runs = []
    for norm, backbone in (("bn", "tiny"), ("cbn", "tiny_cbn")):
        reid = replace(reid_config(train["pid"].nunique(), settings.reid_iterations), backbone=backbone)
        names = {name: norm if name == "baseline" else f"{norm}_{name}" for name in sets}
        done = run_settings({names[name]: make for name, make in sets.items()}, test, world.root,
                            _runs_dir(profile, world, reid), seeds, reid, progress=progress)
        runs.append(done.assign(norm=norm, training_set=done["setting"].map({v: k for k, v in names.items()})))
    return pd.concat(runs, ignore_index=True).assign(experiment="camera_bn", dataset="synthetic")


def camera_bn_gains(runs: pd.DataFrame) -> pd.DataFrame:
    """Per batch norm of :func:`camera_bn_study` and training set: mAP and its paired change over the same
    norm's train-split runs, and the share of the oracle's gain that Pose-dIVE captures (seed by seed)."""
    tables = []
    for norm, part in runs.groupby("norm", sort=False):
        by_set = part.assign(setting=part["training_set"])
        summary = paired_summary(by_set, "baseline", decimals=None)
        share = oracle_gain_share(by_set, "baseline", "posedive", "oracle")
        summary.loc["posedive", ["oracle_share_mean", "oracle_share_std"]] = share["mean"], share["std"]
        tables.append(summary.rename_axis("training_set").reset_index().assign(norm=norm))
    return pd.concat(tables, ignore_index=True).round(3)


def split_study(world: SyntheticWorld, kind: str, profile: str, seeds: list[int], generator_dir: str | os.PathLike,
                progress: bool = False, controls: bool = False) -> dict:
    """A Cam (``kind='cam'``) or Pose split of the world's test identities (diverse viewpoints and poses,
    like MSMT17): ``{"definition", "split" (manifest rows), "augmentation" (extra sets by setting), "runs"}``.

    ``controls`` adds settings that tell why generated images help or hurt on the split: generated images in
    the split's own train conditions (``in_domain``) and fewer Pose-dIVE images per identity
    (``posedive_<n>_per_id``)."""
    from .data.splits import apply_split, make_split
    settings = profile_settings(profile)
    source = world.subset("test")
    definition = make_split(source, kind, seed=0)
    frame = apply_split(source, definition)
    train, test = frame[frame["split"] == "train"], frame[frame["split"] != "train"]
    config = augment_config(profile, seeds[0])

    def generated(mode: str, generator: str | os.PathLike | None = generator_dir) -> pd.DataFrame:
        return augmentation_set(world, mode, config, settings.augment_gallery_size, generator, progress, train=train)

    extra = {"posedive": generated("both"), "oracle": generated("both", None)}
    if controls:
        extra["in_domain"] = generated("in_domain")
        for n in sorted({1, *settings.per_id_counts} - {config.per_id}):
            extra[f"posedive_{n}_per_id"] = extra["posedive"][extra["posedive"]["slot"] < n]
    reid = reid_config(train["pid"].nunique(), settings.reid_iterations)
    runs_dir = _runs_dir(profile, world, reid)
    runs = run_settings(_training_sets(train, extra), test, world.root, runs_dir, seeds, reid, progress=progress)
    return {"definition": definition, "split": frame, "augmentation": extra,
            "runs": runs.assign(experiment=f"msmt17s_{kind}", dataset="synthetic")}


def augmentation_study(world: SyntheticWorld, profile: str, seed: int, generator_dir: str | os.PathLike,
                       progress: bool = False) -> dict[str, pd.DataFrame]:
    """Notebook 3's augmentation sets of ``profile``: ``generated_<mode>`` for every gallery mode and the oracle
    renders in the ``both`` conditions (``oracle_both``), planned alike so they compare image by image."""
    from .augment.condition_gallery import MODES

    config, gallery_size = augment_config(profile, seed), profile_settings(profile).augment_gallery_size
    sets = {f"generated_{mode}": augmentation_set(world, mode, config, gallery_size, generator_dir, progress)
            for mode in MODES}
    sets["oracle_both"] = augmentation_set(world, "both", config, gallery_size, None, progress)
    return sets


def filter_study(world: SyntheticWorld, profile: str, seed: int, sets: dict[str, pd.DataFrame],
                 progress: bool = False) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Keypoint filtering of each named set: the tau sweep (:func:`~.augment.filtering.filter_summary`, one row
    per set and tau) and each set's per-image decisions at the default thresholds."""
    from .augment.filtering import apply_thresholds, filter_summary

    gallery_size = profile_settings(profile).augment_gallery_size
    stats = {name: filter_statistics(world, rows, gallery_size, seed, progress) for name, rows in sets.items()}
    summary = pd.concat([filter_summary(table).assign(set=name) for name, table in stats.items()], ignore_index=True)
    return summary, {name: apply_thresholds(table) for name, table in stats.items()}


def identity_statistics(world: SyntheticWorld, profile: str, seed: int, sets: dict[str, pd.DataFrame],
                        progress: bool = False) -> dict[str, pd.DataFrame]:
    """Per-image keypoint and identity statistics of each named set, the identity (``id_cosine`` to the
    reference) judged by the studies' baseline Re-ID model."""
    judge = baseline_judge(world, profile, seed, progress)
    gallery_size = profile_settings(profile).augment_gallery_size
    return {name: filter_statistics(world, rows, gallery_size, seed, progress, judge) for name, rows in sets.items()}


def quality_table(statistics: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per set of :func:`~.augment.filtering.quality_summary` (keypoints found, keypoint error, identity)."""
    from .augment.filtering import quality_summary

    return pd.DataFrame([{"set": name, **quality_summary(table)} for name, table in statistics.items()])


def identity_quality(world: SyntheticWorld, profile: str, seed: int, sets: dict[str, pd.DataFrame],
                     progress: bool = False) -> pd.DataFrame:
    """:func:`quality_table` of :func:`identity_statistics`: one row per set."""
    return quality_table(identity_statistics(world, profile, seed, sets, progress))


def baseline_judge(world: SyntheticWorld, profile: str, seed: int, progress: bool = False):
    """The baseline Re-ID model (train split only, seed ``seed``) of the studies, e.g. to judge the identity
    of generated images; it is the same run as the studies' baseline, so it trains once."""
    from .reid.experiment import trained_run
    from .reid.train import load_reid_model

    train = world.subset("train")
    reid = reid_config(train["pid"].nunique(), profile_settings(profile).reid_iterations)
    return load_reid_model(trained_run(train, world.root, _runs_dir(profile, world, reid), seed, reid, progress))


def ablation_sets(world: SyntheticWorld, profile: str, seed: int, generator_dir: str | os.PathLike,
                  progress: bool = False) -> dict[str, pd.DataFrame]:
    """Extra training rows per ablation setting: one generated set per gallery mode (``both``, ``pose``,
    ``viewpoint``, ``in_domain``); as many true renders of the same people in the in-domain conditions
    (``oracle_in_domain``: more real images of the training distribution, Table 3's quantity); ``both`` cut to
    fewer images per identity (``both_per_id_<n>``); ``both`` keypoint-filtered with all thresholds at tau
    (``both_tau_<tau>``) and, as the paper's supplementary Fig. 4 matches counts, as many images of ``both`` drawn
    at random (``both_tau_<tau>_random``); ``both`` filtered by identity: Re-ID cosine similarity to the reference
    at least c, judged by the baseline model (``both_id_<c>``)."""
    from .augment.condition_gallery import MODES
    from .augment.filtering import FilterThresholds, add_identity_similarity, apply_thresholds

    settings = profile_settings(profile)
    config = augment_config(profile, seed)
    sets = {mode: augmentation_set(world, mode, config, settings.augment_gallery_size, generator_dir, progress)
            for mode in MODES}
    sets["oracle_in_domain"] = augmentation_set(world, "in_domain", config, settings.augment_gallery_size, None, progress)
    both = sets["both"]
    for n in settings.per_id_counts:
        if not 0 < n < config.per_id:
            raise ValueError(f"per_id_counts must lie between 1 and augment_per_id - 1 ({config.per_id - 1}), got {n}")
        sets[f"both_per_id_{n}"] = both[both["slot"] < n]
    stats = filter_statistics(world, both, settings.augment_gallery_size, seed, progress)
    for tau in settings.filter_taus:
        sets[f"both_tau_{tau}"] = keypoint_filtered(both, stats, tau)
        sets[f"both_tau_{tau}_random"] = random_subset(both, len(sets[f"both_tau_{tau}"]), seed)
    if settings.identity_cosines:
        judged = add_identity_similarity(stats, world.root, baseline_judge(world, profile, seed, progress))
        for cosine in settings.identity_cosines:
            kept = apply_thresholds(judged, FilterThresholds(0, 0, 1, 0, min_id_cosine=cosine))
            sets[f"both_id_{cosine}"] = both[both["path"].isin(kept.loc[kept["keep"], "path"])]
    return sets


def keypoint_filtered(augmentation: pd.DataFrame, stats: pd.DataFrame, tau: float) -> pd.DataFrame:
    """The rows of ``augmentation`` that pass the keypoint filter with every confidence threshold at ``tau``."""
    from .augment.filtering import FilterThresholds, apply_thresholds

    kept = apply_thresholds(stats, FilterThresholds.at(tau))
    return augmentation[augmentation["path"].isin(kept.loc[kept["keep"], "path"])]


def matched_filter_table(runs: pd.DataFrame, profile: str) -> pd.DataFrame:
    """Per filter threshold of ``profile``: the kept images' count and the seed-by-seed mAP change of the keypoint-
    filtered set over as many images drawn at random (``both_tau_<tau>`` - ``both_tau_<tau>_random``)."""
    return matched_control_table(runs, {tau: (f"both_tau_{tau}", f"both_tau_{tau}_random")
                                        for tau in profile_settings(profile).filter_taus})


def ablation_study(world: SyntheticWorld, profile: str, seeds: list[int], generator_dir: str | os.PathLike,
                   progress: bool = False) -> pd.DataFrame:
    """Re-ID on the train split plus each set of :func:`ablation_sets`, and the baseline; one row per setting
    and seed, with ``extra_images`` (generated images added)."""
    settings = profile_settings(profile)
    train, test = world.subset("train"), world.subset("test")
    extra = ablation_sets(world, profile, seeds[0], generator_dir, progress)
    reid = reid_config(train["pid"].nunique(), settings.reid_iterations)
    runs_dir = _runs_dir(profile, world, reid)
    runs = run_settings(_training_sets(train, extra), test, world.root, runs_dir, seeds, reid, progress=progress)
    return runs.assign(experiment="ablation", dataset="synthetic", extra_images=runs["train_images"] - len(train))


def ablation_tables(runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Paired summaries (mAP, against each table's first setting) of the settings of :data:`ABLATION_TABLES`."""
    tables = {}
    for name, order in ABLATION_TABLES.items():
        rows = runs[runs["setting"].isin(order)]
        table = paired_summary(rows, order[0]).reindex(list(order))
        tables[name] = table.assign(extra_images=rows.groupby("setting")["extra_images"].first().reindex(list(order)))
    return tables


def per_id_points(profile: str) -> dict[str, float]:
    """Setting -> generated images per identity (0 is the baseline)."""
    settings = profile_settings(profile)
    points = {"baseline": 0, "both": settings.augment_per_id}
    points.update({f"both_per_id_{n}": n for n in settings.per_id_counts})
    return points


def threshold_points(profile: str) -> dict[str, float]:
    """Setting -> filter threshold tau (0 keeps every image: the unfiltered set)."""
    return {"both": 0.0, **{f"both_tau_{tau}": tau for tau in profile_settings(profile).filter_taus}}


def identity_points(profile: str) -> dict[str, float]:
    """Setting -> minimum Re-ID cosine to the reference (-1 keeps every image: the unfiltered set)."""
    return {"both": -1.0, **{f"both_id_{c}": c for c in profile_settings(profile).identity_cosines}}


def _pretrained_and_scratch(world: SyntheticWorld, profile: str, seed: int, pretrained: str | None,
                            progress: bool) -> dict[str, Path]:
    """The generator fine-tuned from the stage-1 weights (``pretrained``) and one trained for the same stage-2 steps
    from random U-Nets (``scratch``; the pretrained VAE is kept), each trained once and cached."""
    from .generator.experiment import trained_generator

    return {start: trained_generator(world, profile, pretrained=pretrained, seed=seed, progress=progress,
                                     from_scratch=start == "scratch")[0] for start in ("pretrained", "scratch")}


def scratch_study(world: SyntheticWorld, profile: str, seed: int, pretrained: str | None,
                  progress: bool = False) -> pd.DataFrame:
    """Identity scores of the generators of :func:`_pretrained_and_scratch`: one row per start."""
    from .generator.experiment import profile_identity_check

    rows = []
    for start, generator_dir in _pretrained_and_scratch(world, profile, seed, pretrained, progress).items():
        scores, _ = profile_identity_check(generator_dir, world, profile, seed, progress)
        rows.append({"start": start, **{k: scores[k] for k in GENERATED_SCORES}})
    return pd.DataFrame(rows)


def scratch_reid_study(world: SyntheticWorld, profile: str, seeds: list[int], pretrained: str | None,
                       progress: bool = False) -> pd.DataFrame:
    """The paper's Table 8a by Re-ID: the baseline and the train split plus the ``both`` augmentation of each
    generator of :func:`_pretrained_and_scratch` (``pretrained``, ``scratch``); one row per setting and seed."""
    settings = profile_settings(profile)
    config = augment_config(profile, seeds[0])
    extra = {start: augmentation_set(world, "both", config, settings.augment_gallery_size, generator_dir, progress)
             for start, generator_dir in _pretrained_and_scratch(world, profile, seeds[0], pretrained, progress).items()}
    return _variant_runs(world, profile, seeds, "table8a", extra, progress)


def _generator_variant(world: SyntheticWorld, profile: str, name: str, generator_dir: Path, tau: float, seed: int,
                       progress: bool) -> tuple[dict, dict[str, pd.DataFrame]]:
    """A generator's identity scores and its two augmentations: ``name`` = its ``both`` set, and
    ``name_tau_<tau>`` = the same keypoint-filtered."""
    from .generator.experiment import profile_identity_check

    settings = profile_settings(profile)
    scores, _ = profile_identity_check(generator_dir, world, profile, seed, progress)
    both = augmentation_set(world, "both", augment_config(profile, seed), settings.augment_gallery_size, generator_dir, progress)
    stats = filter_statistics(world, both, settings.augment_gallery_size, seed, progress)
    return {k: scores[k] for k in GENERATED_SCORES}, {name: both, f"{name}_tau_{tau}": keypoint_filtered(both, stats, tau)}


def _variant_runs(world: SyntheticWorld, profile: str, seeds: list[int], experiment: str, extra: dict[str, pd.DataFrame],
                  progress: bool) -> pd.DataFrame:
    """Re-ID runs of the baseline and of the train split plus each of ``extra``, seed by seed."""
    train, test = world.subset("train"), world.subset("test")
    reid = reid_config(train["pid"].nunique(), profile_settings(profile).reid_iterations)
    runs = run_settings(_training_sets(train, extra), test, world.root, _runs_dir(profile, world, reid), seeds, reid,
                        progress=progress)
    return runs.assign(experiment=experiment, dataset="synthetic", extra_images=runs["train_images"] - len(train))


def fine_tuning_study(world: SyntheticWorld, profile: str, seeds: list[int], stage2_steps: list[int],
                      pretrained: str | None, tau: float = 0.6, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The generator fine-tuned for each of ``stage2_steps`` from ``pretrained``: its identity scores (one row
    per length) and Re-ID runs (baseline, ``stage2_<n>`` = train + its ``both`` augmentation, and
    ``stage2_<n>_tau_<tau>`` = the same keypoint-filtered; one row per setting and seed)."""
    from .generator.experiment import trained_generator

    if not stage2_steps or min(stage2_steps) < 1:
        raise ValueError(f"stage2_steps must be positive step counts, got {stage2_steps}")
    extra, identity = {}, []
    for steps in stage2_steps:
        generator_dir, _ = trained_generator(world, profile, stage2_steps=steps, pretrained=pretrained,
                                             seed=seeds[0], progress=progress)
        scores, sets = _generator_variant(world, profile, f"stage2_{steps}", generator_dir, tau, seeds[0], progress)
        identity.append({"stage2_steps": steps, **scores})
        extra.update(sets)
    return _variant_runs(world, profile, seeds, "fine_tuning", extra, progress), pd.DataFrame(identity)


def stage1_length_study(world: SyntheticWorld, profile: str, seeds: list[int], extra_steps: list[int],
                        pretrained: str, tau: float = 0.6, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stage 1 ("pretraining") continued from ``pretrained`` for each of ``extra_steps`` more steps (0 = as is;
    each length continues the previous one), then fine-tuned for the profile's stage-2 steps: identity scores
    (one row per length) and Re-ID runs (baseline, ``stage1_plus_<n>`` and ``stage1_plus_<n>_tau_<tau>``)."""
    from .generator.experiment import continued_stages, trained_generator

    extra, identity = {}, []
    for steps, start in continued_stages(world, profile, extra_steps, pretrained, seeds[0], progress).items():
        generator_dir, _ = trained_generator(world, profile, pretrained=start, seed=seeds[0], progress=progress)
        scores, sets = _generator_variant(world, profile, f"stage1_plus_{steps}", generator_dir, tau, seeds[0], progress)
        identity.append({"stage1_extra_steps": steps, **scores})
        extra.update(sets)
    return _variant_runs(world, profile, seeds, "stage1_length", extra, progress), pd.DataFrame(identity)
