"""Per-identity generation (paper Sec. 4.1 step 2): every identity gets ``per_id`` new images.

For each identity and each of its ``per_id`` slots a seeded draw picks a reference image of that
identity and a condition of the gallery; the generator (or, on the synthetic world, the oracle
renderer: the true identity in the same condition) makes the image. The plan is a pure function of
the seed, so a run is reproducible and can be split: identities are sharded between the processes
of ``accelerate`` (``accelerate launch`` for several GPUs). Each process writes its images
atomically and appends their manifest rows to its own journal after each batch, so a killed run
resumes where it stopped without losing or duplicating an image. The finished manifest records
each image's parent, condition, pose id, viewpoint and seed.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data.manifest import new_manifest, write_manifest
from ..paths import atomic_output
from .condition_gallery import ConditionGallery


@dataclass(frozen=True)
class AugmentConfig:
    per_id: int = 15  # the paper's best
    steps: int = 20
    guidance_scale: float = 3.5
    batch: int = 16
    seed: int = 0

    def __post_init__(self):
        if not all(isinstance(v, (int, np.integer)) and v >= 1 for v in (self.per_id, self.steps, self.batch)):
            raise ValueError(f"per_id, steps and batch must be whole numbers of at least 1, got {self.per_id}, "
                             f"{self.steps} and {self.batch}")
        if self.guidance_scale < 0:
            raise ValueError(f"guidance_scale must not be negative (1 or less: no classifier-free guidance), got "
                             f"{self.guidance_scale}")


def plan_augmentation(train: pd.DataFrame, gallery: ConditionGallery, config: AugmentConfig, tag: str) -> pd.DataFrame:
    """One row per new image: pid, slot, reference (parent) row and gallery condition, output path, seed."""
    if train.empty:
        raise ValueError("no training rows to augment")
    missing = [c for c in ("path", "pid", "camid", "dataset") if c not in train.columns]
    if missing:
        raise ValueError(f"the training manifest lacks columns {missing}; build it with new_manifest or a data set loader")
    if len(gallery) == 0:
        raise ValueError("the condition gallery is empty; build it with at least one condition")
    pids = np.sort(train["pid"].unique())
    by_pid = {int(p): np.flatnonzero(train["pid"].to_numpy() == p) for p in pids}
    rows = []
    for pid in pids:
        rng = np.random.default_rng([config.seed, int(pid), 7])
        refs = rng.choice(by_pid[int(pid)], size=config.per_id)
        conditions = rng.integers(len(gallery), size=config.per_id)
        for slot, (ref, condition) in enumerate(zip(refs, conditions)):
            rows.append({"pid": int(pid), "slot": slot, "reference": int(ref), "condition": int(condition),
                         "path": f"{tag}/{int(pid):06d}_g{slot:03d}.jpg", "seed": int(rng.integers(2**31))})
    return pd.DataFrame(rows)


def _journal(out_root: Path, process: int) -> Path:
    return out_root / "journal" / f"process{process:03d}.csv"


def _read_journal(journal: Path) -> pd.DataFrame:
    """The complete rows of a journal: a last line cut short by a kill (no newline yet) is left out."""
    text = journal.read_bytes()
    complete = text[:text.rfind(b"\n") + 1].decode("utf-8")
    if complete.count("\n") < 2:  # no header, or a header without rows
        return pd.DataFrame(columns=["path"])
    return pd.read_csv(io.StringIO(complete), dtype={"pose_id": str, "keypoints": str})


def _done(out_root: Path) -> set[str]:
    """Paths recorded in any journal whose image exists (an image without a journal row is redone)."""
    done = set()
    for journal in sorted((out_root / "journal").glob("process*.csv")):
        done |= {p for p in _read_journal(journal)["path"] if (out_root / p).is_file()}
    return done


def _plan_digest(plan: pd.DataFrame, train: pd.DataFrame, gallery: ConditionGallery, config: AugmentConfig,
                 generator_key: str | None = None) -> str:
    """What the images will be: the plan with each reference's path and each condition's id, the sampler's
    settings (not the batch size, which does not change them) and ``generator_key`` when given (else the
    generator's weights are the caller's to key: ``augmentation_set`` names its folders by them)."""
    described = plan.assign(parent=train["path"].to_numpy()[plan["reference"].to_numpy()],
                            condition_id=gallery.table["condition_id"].to_numpy()[plan["condition"].to_numpy()])
    sampler = f"steps={config.steps} guidance_scale={config.guidance_scale}\n"
    if generator_key is not None:
        sampler += f"generator={generator_key}\n"
    return hashlib.sha1((sampler + described.to_csv(index=False)).encode()).hexdigest()[:16]


def _check_plan(out_root: Path, digest: str, config: AugmentConfig, state) -> None:
    """Refuse an ``out_root`` that holds images of another plan (other identities, count, seed, gallery or
    sampler settings), in every process; the main process records the plan of a new folder."""
    record = out_root / "plan.json"
    if state.is_main_process and not record.is_file():
        with atomic_output(record) as tmp:
            tmp.write_text(json.dumps({"digest": digest, "config": asdict(config)}, indent=1))
    state.wait_for_everyone()
    try:
        stored = json.loads(record.read_text())["digest"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{record} is damaged; delete {out_root} and generate again") from None
    if stored != digest:
        raise ValueError(f"{out_root} holds an augmentation of another plan (other training rows, gallery, "
                         "per_id, seed, sampler settings or generator); delete that folder or give another out_root")


def augment(train: pd.DataFrame, root: str | os.PathLike, gallery: ConditionGallery, out_root: str | os.PathLike,
            config: AugmentConfig = AugmentConfig(), generator=None, oracle=None, tag: str = "generated",
            progress: bool = True, stop_after_batches: int | None = None,
            generator_key: str | None = None) -> pd.DataFrame | None:
    """Make ``config.per_id`` images per identity of ``train`` into ``out_root``; return the finished manifest.

    Give ``generator`` (a :class:`~posedive_lib.generator.model.PoseDiveGenerator`) or ``oracle`` (a
    :class:`~posedive_lib.data.synthetic.world.OracleRenderer`, synthetic world only). Returns None on a
    process that is not the main one, or when ``stop_after_batches`` ended the run early. ``generator_key`` (e.g.
    the generator's weights digest) joins the plan that a resumed or reused ``out_root`` must match. The generator
    samples on its own device, in its own dtype.
    """
    from accelerate import PartialState
    from tqdm.auto import tqdm

    if (generator is None) == (oracle is None):
        raise ValueError("give exactly one of generator= (generation) or oracle= (true renders on the synthetic world)")
    out_root, root = Path(out_root), Path(root)
    manifest_path = out_root / "manifest.csv"
    plan = plan_augmentation(train, gallery, config, tag)
    state = PartialState()
    _check_plan(out_root, _plan_digest(plan, train, gallery, config, generator_key), config, state)
    if manifest_path.is_file():
        return pd.read_csv(manifest_path, dtype={"pose_id": str, "keypoints": str})
    pids = np.sort(plan["pid"].unique())
    mine = set(pids[state.process_index::state.num_processes].tolist())
    done = _done(out_root)
    todo = plan[plan["pid"].isin(mine) & ~plan["path"].isin(done)].reset_index(drop=True)
    journal = _journal(out_root, state.process_index)
    journal.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=int(plan["pid"].isin(mine).sum()), initial=int(plan["pid"].isin(mine).sum()) - len(todo),
               desc=f"augmentation ({tag})", unit="img", disable=not progress or not state.is_local_main_process)
    make = _Generate(generator, config) if generator is not None else _Render(oracle)
    for number, start in enumerate(range(0, len(todo), config.batch)):
        if stop_after_batches is not None and number >= stop_after_batches:
            bar.close()
            return None
        chunk = todo.iloc[start:start + config.batch]
        parents = train.iloc[chunk["reference"].to_numpy()]
        images = make(parents, root, gallery, chunk)
        for path, image in zip(chunk["path"], images):
            with atomic_output(out_root / path) as tmp:
                from PIL import Image

                Image.fromarray(image).save(tmp, format="JPEG", quality=95)
        records = _records(chunk, parents, gallery, "oracle" if oracle is not None else "generated")
        _append(journal, records)
        bar.update(len(chunk))
    bar.close()
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    frames = [_read_journal(j) for j in sorted((out_root / "journal").glob("process*.csv"))]
    frames = [frame for frame in frames if len(frame)]  # an empty journal would turn integer columns into floats
    finished = pd.concat(frames, ignore_index=True).drop_duplicates("path", keep="last")
    finished = finished.set_index("path").loc[plan["path"]].reset_index()  # plan order; fails loudly if any is missing
    manifest = new_manifest(finished)
    write_manifest(manifest, manifest_path, out_root)
    return manifest


def _append(journal: Path, records: pd.DataFrame) -> None:
    """Append rows; a last line cut short by a kill is removed first (its images are redone)."""
    if journal.is_file() and journal.stat().st_size:
        with open(journal, "rb+") as handle:
            handle.seek(-1, os.SEEK_END)
            if handle.read(1) != b"\n":  # cut: only then read the file, to find the last complete line
                handle.seek(0)
                handle.truncate(handle.read().rfind(b"\n") + 1)  # 0 when not even the header is complete
    exists = journal.is_file() and journal.stat().st_size > 0
    records.to_csv(journal, mode="a", header=not exists, index=False)


def _records(chunk: pd.DataFrame, parents: pd.DataFrame, gallery: ConditionGallery, source: str) -> pd.DataFrame:
    conditions = gallery.table.iloc[chunk["condition"].to_numpy()]
    return pd.DataFrame({
        "path": chunk["path"].to_numpy(), "pid": chunk["pid"].to_numpy(), "camid": parents["camid"].to_numpy(),
        "split": "train", "dataset": parents["dataset"].to_numpy(), "source": source,
        "azimuth": conditions["azimuth"].to_numpy(), "elevation": conditions["elevation"].to_numpy(),
        "pose_id": conditions["pose_id"].to_numpy(), "keypoints": conditions["keypoints"].to_numpy(),
        "parent": parents["path"].to_numpy(),
        "condition_id": conditions["condition_id"].to_numpy(), "seed": chunk["seed"].to_numpy(),
        "slot": chunk["slot"].to_numpy()})


class _Generate:
    def __init__(self, generator, config: AugmentConfig):
        from ..generator.pipeline import PoseDivePipeline

        self.generator, self.config = generator, config
        self.pipe = PoseDivePipeline(generator)

    def __call__(self, parents, root, gallery, chunk) -> np.ndarray:
        from ..generator.data import load_images, stack_conditions, to_uint8

        index = chunk["condition"].to_numpy()
        conditions = stack_conditions({k: v[index] for k, v in gallery.maps().items()}).float() / 255
        if tuple(conditions.shape[2:]) != self.generator.image_size:
            raise ValueError(f"gallery maps are {tuple(conditions.shape[2:])} but the generator makes "
                             f"{self.generator.image_size} images: build the gallery at the generator's size")
        references = load_images(parents, root, self.generator.image_size)
        # each image has its own seed, so results do not depend on batching or sharding
        images = self.pipe(references, conditions, self.config.steps, self.config.guidance_scale,
                           seeds=chunk["seed"].tolist(), batch_size=self.config.batch)
        return to_uint8(images).permute(0, 2, 3, 1).numpy()


class _Render:
    """The true identity in the gallery's pose and viewpoint, through the reference's camera."""

    def __init__(self, oracle):
        self.oracle, self.sources = oracle, {}

    def __call__(self, parents, root, gallery, chunk) -> np.ndarray:
        from .condition_gallery import gallery_pose_sources

        images = []
        conditions = gallery.table.iloc[chunk["condition"].to_numpy()]
        for (_, row), pid, camid, seed in zip(conditions.iterrows(), chunk["pid"], parents["camid"], chunk["seed"]):
            key = int(row["source_seed"])
            if key not in self.sources:
                self.sources[key] = gallery_pose_sources(key)
            pose = self.sources[key][row["pose_source"]][int(row["pose_index"])]
            out = self.oracle.render([int(pid)], [pose], float(row["elevation"]), float(row["azimuth"]),
                                     camid=int(camid), seed=int(seed))
            images.append(out.images[0])
        return np.stack(images)
