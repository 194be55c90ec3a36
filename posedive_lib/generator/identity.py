"""Judge a generator by identity, not by loss (synthetic world only, where the truth can be rendered).

For oracle conditions of train identities (a pose and viewpoint the train split never shows), the
generator gets a train image of the identity as reference and the condition maps. A Re-ID judge then
compares the generated image with the oracle render of the same identity in that condition and with
a render of another identity in the same condition, and retrieves its identity among the oracle
renders of the probed identities (the target render itself left out). The reference image as the
query gives the ceiling that copying the reference would reach; the oracle render as the query gives
what a perfect generator would reach.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.synthetic.world import SyntheticWorld, pose_sources, plan_shots
from ..data.synthetic.world_conditions import world_conditions
from .data import load_images, stack_conditions, to_uint8


@dataclass
class IdentityProbe:
    pids: np.ndarray  # (N,)
    references: torch.Tensor  # (N, 3, H, W) in [-1, 1]
    conditions: torch.Tensor  # (N, 7, H, W) in [0, 1]
    same: torch.Tensor  # (N, 3, H, W) uint8: oracle render, same identity and condition
    other: torch.Tensor  # (N, 3, H, W) uint8: another identity, same condition
    gallery: torch.Tensor  # (G, 3, H, W) uint8: oracle renders of the probed identities
    gallery_pids: np.ndarray  # (G,)
    target_in_gallery: np.ndarray  # (N,) index of each probe's own oracle render in the gallery

    def __len__(self) -> int:
        return len(self.pids)


def identity_probe(world: SyntheticWorld, n_ids: int = 20, per_id: int = 4, seed: int = 0) -> IdentityProbe:
    """Probe ``per_id`` oracle conditions for each of ``n_ids`` train identities (drawn with ``seed``)."""
    from .. data.synthetic.world import OracleRenderer

    if n_ids < 2 or per_id < 1:
        raise ValueError(f"identity checks need n_ids >= 2 (to compare identities) and per_id >= 1, got {n_ids}, {per_id}")
    oracle, train = world.subset("oracle"), world.subset("train")
    if oracle.empty:
        raise ValueError("this world has no oracle set (oracle_per_id=0): identity checks need one")
    rng = np.random.default_rng(seed)
    pids = np.sort(rng.choice(np.sort(oracle["pid"].unique()), size=min(n_ids, oracle["pid"].nunique()), replace=False))
    gallery_rows = oracle[oracle["pid"].isin(pids)].reset_index()
    probe_rows = np.concatenate([rng.choice(np.flatnonzero(gallery_rows["pid"].values == p), min(per_id, 
                                 int((gallery_rows["pid"] == p).sum())), replace=False) for p in pids])
    probes = gallery_rows.iloc[probe_rows]
    reference_paths = [train[train["pid"] == p]["path"].iloc[rng.integers((train["pid"] == p).sum())] for p in probes["pid"]]
    maps = world_conditions(world, "oracle", progress=False)
    conditions = stack_conditions({k: maps[k][probes["index"].values] for k in ("depth", "normal", "skeleton")})
    gallery = to_uint8(load_images(gallery_rows, world.root))
    # the same shot with another identity: every probe gets a different identity from the probed set
    shots = {s.path: s for s in plan_shots(world.config)}
    sources, renderer = pose_sources(world.config.seed), OracleRenderer(world.config)
    others = []
    for path, pid in zip(probes["path"], probes["pid"]):
        shot = shots[path]
        other = int(rng.choice(pids[pids != pid]))
        out = renderer.render([other], [sources[shot.pose_source][shot.pose_index]], shot.elevation, shot.azimuth,
                              camid=shot.camid, seed=shot.seed)
        others.append(torch.from_numpy(out.images[0]).permute(2, 0, 1))
    return IdentityProbe(
        pids=probes["pid"].values, references=load_images(train.set_index("path").loc[reference_paths].reset_index(), world.root),
        conditions=conditions.float() / 255, same=gallery[probe_rows], other=torch.stack(others), gallery=gallery,
        gallery_pids=gallery_rows["pid"].values, target_in_gallery=probe_rows)


def identity_scores(judge, probe: IdentityProbe, generated: torch.Tensor) -> dict:
    """Rank-1 among oracle renders and the share closer to their own identity, for generated images
    (uint8 (N, 3, H, W)), with the reference images (ceiling) and oracle renders (perfect generator) alongside."""
    from ..reid.train import embed_images

    if len(generated) != len(probe):
        raise ValueError(f"{len(generated)} generated images for {len(probe)} probes")
    unit = lambda x: F.normalize(embed_images(judge, x, flip=True), dim=1)  # noqa: E731
    gallery, same, other = unit(probe.gallery), unit(probe.same), unit(probe.other)
    scores = {}
    for name, queries in (("generated", generated), ("reference", to_uint8(probe.references)), ("oracle", probe.same)):
        q = unit(queries)
        similarity = q @ gallery.T
        similarity[torch.arange(len(q)), torch.as_tensor(probe.target_in_gallery)] = -2.0  # leave the target out
        best = similarity.argmax(dim=1).numpy()
        scores[f"rank1_{name}"] = float(np.mean(probe.gallery_pids[best] == probe.pids))
        cos_same, cos_other = (q * same).sum(1), (q * other).sum(1)
        scores[f"closer_{name}"] = float((cos_same > cos_other).float().mean())
        scores[f"cos_same_{name}"] = float(cos_same.mean())
        scores[f"cos_other_{name}"] = float(cos_other.mean())
    scores["probes"], scores["identities"] = len(probe), int(len(np.unique(probe.pids)))
    return scores
