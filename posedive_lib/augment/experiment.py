"""Augmented training sets of the synthetic world, one per gallery mode, generated or rendered by the oracle.

Images are written inside the world's folder (``augmented/<tag>-<mode>-<key>/``) so that the returned
manifest rows use paths relative to the world root and can be mixed with its training rows.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from ..data.synthetic.world import SyntheticWorld
from ..paths import config_key
from ..generator.model import weights_digest
from .condition_gallery import GalleryConfig, build_condition_gallery
from .generate import AugmentConfig, augment


def world_gallery_config(world: SyntheticWorld, mode: str, gallery_size: int, seed: int) -> GalleryConfig:
    """The condition gallery of ``mode`` at the world's image size (the one its augmentation sets are drawn from)."""
    return GalleryConfig(size=gallery_size, mode=mode, width=world.config.width, height=world.config.height, seed=seed)


def augmentation_set(world: SyntheticWorld, mode: str, config: AugmentConfig, gallery_size: int,
                     generator_dir: str | os.PathLike | None = None, progress: bool = True,
                     train: pd.DataFrame | None = None) -> pd.DataFrame:
    """Augmentation rows (paths relative to ``world.root``): generated with the saved generator, or oracle
    renders of the true identities when ``generator_dir`` is None.

    ``train`` (default: the world's train split) gives the identities and their reference images, e.g.
    the train side of a custom split; its rows must lie in the world's folder.
    """
    from ..data.synthetic.world import OracleRenderer
    from ..generator.model import PoseDiveGenerator

    # the generator first: a damaged folder is named before the gallery is rendered
    generator = None if generator_dir is None else PoseDiveGenerator.from_pretrained(generator_dir).eval()
    custom = train is not None
    train = world.subset("train") if train is None else train.reset_index(drop=True)
    gallery_config = world_gallery_config(world, mode, gallery_size, config.seed)
    gallery = build_condition_gallery(gallery_config, train_viewpoints=train, progress=progress)
    tag = "oracle" if generator_dir is None else "generated"
    source = "oracle" if generator_dir is None else weights_digest(generator_dir)
    extra = [asdict(config) if generator_dir else config.per_id, config.seed, source]
    if custom:  # other references: another folder (the default set keeps its historical key)
        extra.append(str(pd.util.hash_pandas_object(train["path"], index=False).sum()))
    key = config_key(gallery_config, extra=extra, length=10)
    folder = Path("augmented") / f"{tag}-{mode}-{key}"
    if generator_dir is None:
        manifest = augment(train, world.root, gallery, world.root / folder, config, oracle=OracleRenderer(world.config),
                           tag=tag, progress=progress)
    else:
        manifest = augment(train, world.root, gallery, world.root / folder, config, generator=generator, tag=tag,
                           progress=progress)
    return manifest.assign(path=folder.as_posix() + "/" + manifest["path"], set=f"{tag}_{mode}", gallery_mode=mode)


def set_sizes(sets: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Images, identities and images per identity of each named augmentation set."""
    return pd.DataFrame([{"set": name, "images": len(rows), "identities": rows["pid"].nunique(),
                          "per_identity": len(rows) // rows["pid"].nunique()} for name, rows in sets.items()])


def comparison_tensors(world: SyntheticWorld, generated: pd.DataFrame, oracle: pd.DataFrame, gallery_size: int,
                       seed: int = 0, rows: int = 8) -> dict:
    """Reference, condition maps, generated image and oracle render for the first ``rows`` planned images
    of one identity slot each (the generated and oracle sets share their plan)."""
    import torch

    from ..generator.data import load_images, stack_conditions

    picked = generated.drop_duplicates("pid").head(rows)
    matched = oracle.set_index(["pid", "slot"]).loc[list(zip(picked["pid"], picked["slot"]))].reset_index()
    if not (matched["condition_id"].to_numpy() == picked["condition_id"].to_numpy()).all():
        raise ValueError("the generated and oracle sets were planned differently (seed, per_id or gallery differ)")
    mode = picked["gallery_mode"].iloc[0]
    gallery = build_condition_gallery(world_gallery_config(world, mode, gallery_size, seed),
                                      train_viewpoints=world.subset("train"), progress=False)
    index = gallery.table.reset_index().set_index("condition_id").loc[picked["condition_id"], "index"].to_numpy()
    conditions = stack_conditions({k: v[index] for k, v in gallery.maps().items()}).float() / 255
    load = lambda frame: load_images(frame, world.root)  # noqa: E731
    return {"references": load(pd.DataFrame({"path": picked["parent"]})), "conditions": conditions,
            "generated": load(picked), "oracle": load(matched), "pids": torch.tensor(picked["pid"].to_numpy())}


def controlled_grid(world: SyntheticWorld, generator_dir: str | os.PathLike, gallery_size: int, config: AugmentConfig,
                    n_ids: int = 4, n_conditions: int = 5, seed: int = 0) -> dict:
    """The paper's supplementary Fig. 6: ``n_ids`` train identities (one reference image each) in the same
    ``n_conditions`` conditions of the ``both`` gallery, generated and rendered by the oracle. Read across a row:
    one identity in other poses and viewpoints; down a column: other identities in one pose and viewpoint. The cells
    of a column share their sampling seed, so only the reference differs between them.

    Returns uint8 arrays (H, W, 3): ``references`` (n_ids), ``skeletons`` (n_conditions), ``generated`` and
    ``oracle`` (n_ids, n_conditions), and the ``pids``, gallery ``condition_ids`` and sampling ``seeds`` (one per
    column) drawn with ``seed``."""
    import numpy as np

    from ..data.synthetic.world import OracleRenderer
    from ..generator.data import load_images, to_uint8
    from ..generator.model import PoseDiveGenerator
    from .generate import _Generate, _Render

    train = world.subset("train").reset_index(drop=True)
    pids = np.sort(train["pid"].unique())
    if not 1 <= n_ids <= len(pids) or not 1 <= n_conditions <= gallery_size:
        raise ValueError(f"a controlled grid needs 1 to {len(pids)} identities and 1 to {gallery_size} conditions "
                         f"(the gallery's size), got {n_ids} and {n_conditions}")
    gallery = build_condition_gallery(world_gallery_config(world, "both", gallery_size, config.seed),
                                      train_viewpoints=train, progress=False)
    rng = np.random.default_rng([seed, 6])
    chosen = np.sort(rng.choice(pids, size=n_ids, replace=False))
    references = np.array([rng.choice(np.flatnonzero(train["pid"].to_numpy() == pid)) for pid in chosen])
    conditions = np.sort(rng.choice(len(gallery), size=n_conditions, replace=False))
    column_seeds = rng.integers(2**31, size=n_conditions)
    cells = pd.DataFrame({"pid": np.repeat(chosen, n_conditions), "condition": np.tile(conditions, n_ids),
                          "seed": np.tile(column_seeds, n_ids)})
    parents = train.iloc[np.repeat(references, n_conditions)]
    generator = PoseDiveGenerator.from_pretrained(generator_dir).eval()
    shape = (n_ids, n_conditions, world.config.height, world.config.width, 3)
    generated = _Generate(generator, config)(parents, world.root, gallery, cells).reshape(shape)
    oracle = _Render(OracleRenderer(world.config))(parents, world.root, gallery, cells).reshape(shape)
    return {"references": to_uint8(load_images(train.iloc[references], world.root)).permute(0, 2, 3, 1).numpy(),
            "skeletons": gallery.skeleton[conditions], "generated": generated, "oracle": oracle, "pids": chosen,
            "condition_ids": gallery.table["condition_id"].to_numpy()[conditions], "seeds": column_seeds}


def filter_statistics(world: SyntheticWorld, augmentation: pd.DataFrame, gallery_size: int, seed: int = 0,
                      progress: bool = True, judge=None) -> pd.DataFrame:
    """Keypoint statistics (:func:`~.filtering.keypoint_statistics`) of one augmentation set, cached beside its
    images; with a Re-ID ``judge``, also the identity similarity of each image to its reference (``id_cosine``)."""
    from .filtering import add_identity_similarity

    stats = _keypoint_statistics(world, augmentation, gallery_size, seed, progress)
    return stats if judge is None else add_identity_similarity(stats, world.root, judge)


def _keypoint_statistics(world: SyntheticWorld, augmentation: pd.DataFrame, gallery_size: int, seed: int,
                         progress: bool) -> pd.DataFrame:
    from .filtering import cached_keypoint_statistics

    folder = world.root / Path(augmentation["path"].iloc[0]).parent.parent

    def gallery():  # rendered (or loaded) only when the statistics are not cached
        config = world_gallery_config(world, augmentation["gallery_mode"].iloc[0], gallery_size, seed)
        return build_condition_gallery(config, train_viewpoints=world.subset("train"), progress=False)

    return cached_keypoint_statistics(augmentation, world.root, gallery, folder / "keypoint_statistics.csv", progress)