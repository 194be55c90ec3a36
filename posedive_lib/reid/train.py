"""Re-ID training from manifests with ``accelerate`` (one CPU, one GPU or many), resumable.

Training runs in segments of ``checkpoint_every`` iterations; after each segment the full state
(model as safetensors, optimizer, scheduler, RNG states) is saved with ``accelerator.save_state``,
so a killed run resumes from the last segment and continues exactly as if never interrupted.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from ..checkpointing import resume_precision, save_training_state, saved_step, trim_log
from ..paths import atomic_output
from .data import ManifestImages, normalize, train_augmentation
from .evaluation import flip_average
from .model import BACKBONES, ReIDModel


DISK_READERS = 8  # most worker processes decoding a training set read from disk


@dataclass(frozen=True)
class TrainConfig:
    backbone: str = "tiny"
    iterations: int = 600
    P: int = 16  # identities per batch
    K: int = 4  # images per identity
    lr: float = 3.5e-4  # backbone
    lr_head: float | None = None  # BNNeck + classifier (None: same as lr)
    weight_decay: float = 5e-4
    warmup: int = 50
    milestones: tuple = (0.5, 0.8)  # fractions of the run where the learning rate drops by gamma
    gamma: float = 0.1
    margin: float = 0.3
    label_smoothing: float = 0.1
    triplet_weight: float = 1.0
    erase_p: float = 0.5
    checkpoint_every: int = 200
    seed: int = 0
    pretrained_path: str | None = None
    mixed_precision: str = "auto"  # fp16 on GPU, none on CPU
    threads: int | None = None  # torch threads of a CPU run (None: torch's default); a fixed count gives the
    # same result on every machine, whatever its number of cores

    def __post_init__(self):
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; use one of {sorted(BACKBONES)}")
        if min(self.iterations, self.P, self.K, self.checkpoint_every) < 1 or self.P < 2 or self.K < 2:
            raise ValueError("iterations, checkpoint_every >= 1 and P, K >= 2 are required (batch-hard triplets)")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must lie in [0, 1), got {self.label_smoothing}")
        if not self.lr > 0 or (self.lr_head is not None and not self.lr_head > 0):  # NaN fails too
            raise ValueError(f"lr and lr_head must be positive, got lr={self.lr}, lr_head={self.lr_head}")
        if min(self.weight_decay, self.warmup, self.margin, self.triplet_weight) < 0:
            raise ValueError("weight_decay, warmup, margin and triplet_weight must not be negative")
        if not 0 < self.gamma <= 1 or not all(0 < m < 1 for m in self.milestones):
            raise ValueError(f"gamma must lie in (0, 1] and milestones (fractions of the run) in (0, 1), got "
                             f"gamma={self.gamma}, milestones={self.milestones}")
        if not 0 <= self.erase_p <= 1:
            raise ValueError(f"erase_p is a probability in [0, 1], got {self.erase_p}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 (or None for torch's default), got {self.threads}")


PRESETS = {
    # The embedded default (about 2 minutes on 2 CPU cores). At 3.5e-4 for 600 iterations the
    # from-scratch tiny ResNet underfits (train CE 3.3 of 4.8 at the end), hence the higher rate. One
    # thread per run: the experiments train runs side by side (:func:`~.experiment.run_settings`).
    "tiny": TrainConfig(iterations=1000, lr=2e-3, warmup=100, milestones=(0.6, 0.85), threads=1),
    "bot": TrainConfig(backbone="resnet50", iterations=24000, P=16, K=4, warmup=2000, checkpoint_every=2000),
    # CBN (Zhuang et al., ECCV 2020): the bag of tricks with camera-based batch normalisation in every batch norm
    "cbn": TrainConfig(backbone="resnet50_cbn", iterations=24000, P=16, K=4, warmup=2000, checkpoint_every=2000),
    "tiny_cbn": TrainConfig(backbone="tiny_cbn", iterations=1000, lr=2e-3, warmup=100, milestones=(0.6, 0.85), threads=1),
    "diffid": TrainConfig(backbone="resnet50", iterations=20000, P=32, K=8, lr=1e-5, lr_head=1e-4, margin=0.5,
                          label_smoothing=0.0, warmup=0, milestones=(), checkpoint_every=2000),
    "clip": TrainConfig(backbone="clip_vit_b16", iterations=12000, P=16, K=4, lr=5e-6, lr_head=5e-4, warmup=1000,
                        checkpoint_every=2000),
}


def preset_config(name: str, pretrained_path: str | os.PathLike | None = None, iterations: int | None = None) -> TrainConfig:
    """The preset ``name`` (see :data:`PRESETS`) with its backbone weights folder (checked, stored absolute) and
    training length changed when given."""
    from .model import check_backbone_weights

    if name not in PRESETS:
        raise ValueError(f"unknown Re-ID preset {name!r}; use one of {sorted(PRESETS)}")
    config = PRESETS[name]
    pretrained = str(Path(pretrained_path).resolve()) if pretrained_path else config.pretrained_path
    check_backbone_weights(config.backbone, pretrained)
    return replace(config, pretrained_path=pretrained, iterations=iterations or config.iterations)


def _lr_factor(config: TrainConfig):
    steps = [int(m * config.iterations) for m in config.milestones]

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / config.warmup) if config.warmup else 1.0
        return warm * config.gamma ** sum(step >= s for s in steps)

    return factor


def _check_same_config(out_dir: Path, config: TrainConfig) -> None:
    """Refuse to reuse or resume a run folder that was trained with other settings."""
    record = out_dir / "train_config.json"
    if not record.is_file():
        return
    try:
        stored = json.loads(record.read_text())
    except ValueError:
        raise ValueError(f"{record} is damaged; delete {out_dir} and train again") from None
    wanted = json.loads(json.dumps(asdict(config)))
    differ = sorted(k for k in wanted.keys() & stored.keys() if wanted[k] != stored[k])
    if differ:
        shown = ", ".join(f"{k}={stored[k]!r} (asked {wanted[k]!r})" for k in differ[:4])
        raise ValueError(f"{out_dir} holds a Re-ID run with other settings: {shown}; delete that folder or train "
                         "into another one")


def train_reid(frame: pd.DataFrame, root: str | os.PathLike, out_dir: str | os.PathLike, config: TrainConfig = TrainConfig(),
               progress: bool = True, in_memory: bool | None = None, stop_after: int | None = None) -> Path:
    """Train on the rows of ``frame`` (all of them: select the train split first); return the weights file.

    The images are decoded once into memory unless they would take more than ``reid.data.IN_MEMORY_LIMIT`` bytes
    (``in_memory=None``; True or False forces it); either way the run is the same.

    ``stop_after`` ends the run after that many iterations (at a segment boundary), as an interruption would.
    On a CPU the run uses ``config.threads`` torch threads (restored afterwards).
    """
    from ..processes import torch_threads

    with torch_threads(None if torch.cuda.is_available() else config.threads):
        return _train(frame, root, out_dir, config, progress, in_memory, stop_after)


def _train(frame, root, out_dir, config: TrainConfig, progress: bool, in_memory: bool | None, stop_after: int | None) -> Path:
    from accelerate.utils import set_seed
    from pytorch_metric_learning import distances, losses, miners, samplers
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    from ..accelerators import make_accelerator
    from .camera_bn import batch_cameras, camera_norms, without_lone_cameras

    out_dir = Path(out_dir)
    weights = out_dir / "model.safetensors"
    _check_same_config(out_dir, config)
    if weights.is_file():
        return weights
    accelerator = make_accelerator(resume_precision(out_dir / "checkpoint", config.mixed_precision), gpu_default="fp16")
    set_seed(config.seed)
    size = BACKBONES[config.backbone].image_size
    data = ManifestImages(frame, root, size, in_memory=in_memory)
    if data.num_classes < config.P:
        raise ValueError(f"only {data.num_classes} identities but P={config.P} per batch: lower P")
    batch = config.P * config.K
    sampler = samplers.MPerClassSampler(data.labels.numpy(), m=config.K, batch_size=batch,
                                        length_before_new_iter=config.checkpoint_every * batch)
    # images read from disk are decoded by worker processes (the sampler and the augmentation stay in this one)
    workers = 0 if data.in_memory else min(DISK_READERS, os.cpu_count() or 1)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, sampler=sampler, drop_last=True, num_workers=workers)
    # channels-last convolutions: about 1.4x faster training of the ResNet backbones on CPU
    model = ReIDModel(data.num_classes, config.backbone, config.pretrained_path).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameter_groups(config.lr, config.lr_head or config.lr, config.weight_decay))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(config))
    camera_based = bool(camera_norms(model))
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    augment = train_augmentation(size, erase_p=config.erase_p)
    triplet = losses.TripletMarginLoss(margin=config.margin, distance=distances.LpDistance(normalize_embeddings=False))
    miner = miners.BatchHardMiner(distance=distances.LpDistance(normalize_embeddings=False))

    state_dir = out_dir / "checkpoint"
    step = saved_step(state_dir) or 0
    if step:
        accelerator.load_state(str(state_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process:  # whole or not at all: other processes may be reading it
        with atomic_output(out_dir / "train_config.json") as tmp:
            tmp.write_text(json.dumps({**asdict(config), "num_classes": data.num_classes, "label_of": data.label_of},
                                      indent=1))
    log_path = out_dir / "log.csv"
    if accelerator.is_main_process:
        trim_log(log_path, step)  # rows of a segment that was logged but not checkpointed are redone
    bar = tqdm(total=config.iterations, initial=step, desc="re-id training", unit="it",
               disable=not progress or not accelerator.is_main_process)
    end = min(config.iterations, stop_after) if stop_after else config.iterations
    model.train()
    while step < end:
        records = []
        # MPerClassSampler shuffles its label list in place and keeps it between passes; restoring the
        # canonical order makes every segment depend only on the RNG state that the checkpoint restores.
        sampler.labels.sort()
        for images, labels, camids in loader:
            if camera_based:  # a camera with one image in the batch has no batch statistics
                camids, images, labels = without_lone_cameras(camids, images, labels)
            with accelerator.autocast(), batch_cameras(model, camids):
                images = augment(normalize(images)).contiguous(memory_format=torch.channels_last)
                feature, logits = model(images)
                ce = F.cross_entropy(logits, labels, label_smoothing=config.label_smoothing)
                tri = triplet(feature.float(), labels, miner(feature.float(), labels))
                loss = ce + config.triplet_weight * tri
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            step += 1
            bar.update(1)
            records.append({"step": step, "loss": loss.item(), "ce": ce.item(), "triplet": tri.item(),
                            "lr": scheduler.get_last_lr()[0]})
            if step >= config.iterations:
                break
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            pd.DataFrame(records).to_csv(log_path, mode="a", header=not log_path.exists(), index=False)
        save_training_state(accelerator, state_dir, step)
    bar.close()
    if step >= config.iterations and accelerator.is_main_process:
        state = accelerator.unwrap_model(model).state_dict()
        with atomic_output(weights) as tmp:
            save_file({k: v.contiguous().cpu() for k, v in state.items()}, str(tmp))
        shutil.rmtree(state_dir, ignore_errors=True)
    return weights


def load_reid_model(out_dir: str | os.PathLike, device: str = "cpu") -> ReIDModel:
    """The trained model in eval mode, from a training output folder."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    out_dir = Path(out_dir)
    weights, config = out_dir / "model.safetensors", out_dir / "train_config.json"
    if not weights.is_file() or not config.is_file():
        raise FileNotFoundError(f"no trained weights and train_config.json in {out_dir}; finish training first "
                                "(a partial run resumes)")
    try:
        info = json.loads(config.read_text())
        model = ReIDModel(info["num_classes"], info["backbone"],
                          None if info["backbone"] != "clip_vit_b16" else info["pretrained_path"])
        model.load_state_dict(load_file(str(weights)))
    except (ValueError, KeyError, RuntimeError, SafetensorError) as error:  # JSON, weights and state-dict errors
        raise ValueError(f"the trained run in {out_dir} is unreadable ({type(error).__name__}: {error}); delete the "
                         "folder and train again") from error
    return model.to(device).eval()


@torch.no_grad()
def extract_features(model: ReIDModel, frame: pd.DataFrame, root: str | os.PathLike, batch: int = 256,
                     flip: bool = False, device: str = "cpu") -> torch.Tensor:
    """(N, D) BNNeck features of the manifest rows (with ``flip``: averaged with the mirror image, L2-normalised).
    A camera-based BN model normalises each row with its camera's statistics (:mod:`.camera_bn`)."""
    data = ManifestImages(frame.assign(pid=0), root, model.preset.image_size)
    starts = range(0, len(data), batch)
    images = (torch.stack([data[i][0] for i in range(start, min(start + batch, len(data)))]) for start in starts)
    cameras = (data.camids[start:start + batch] for start in starts)
    return torch.cat([embed_images(model, chunk, batch=batch, flip=flip, device=device, camids=camids)
                      for chunk, camids in zip(images, cameras)])


@torch.no_grad()
def embed_images(model: ReIDModel, images: torch.Tensor, batch: int = 256, flip: bool = False,
                 device: str = "cpu", camids: torch.Tensor | None = None) -> torch.Tensor:
    """(N, D) BNNeck features of uint8 images (N, 3, H, W), resized to the model's input size if needed; ``camids``
    (N,) are needed by a camera-based BN model only."""
    from .camera_bn import batch_cameras

    model = model.to(device, memory_format=torch.channels_last).eval()
    size = tuple(model.preset.image_size)
    out = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch].to(device)
        if tuple(chunk.shape[2:]) != size:
            chunk = F.interpolate(chunk.float(), size=size, mode="bilinear", align_corners=False).clamp(0, 255)
        chunk = normalize(chunk).contiguous(memory_format=torch.channels_last)
        with batch_cameras(model, None if camids is None else camids[start:start + batch]):
            feature = model(chunk)
            if flip:
                feature = flip_average(feature, model(chunk.flip(-1)))
        out.append(feature.float().cpu())
    return torch.cat(out)
