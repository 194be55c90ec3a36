"""Generator training data from folders of frames with their condition maps: fashion videos for stage 1, a Re-ID
training split for stage 2, for real users whose body fits (SMPL via 4D-Humans, as the paper) are made elsewhere.

One folder per clip (a video, or one person of a Re-ID set), Champ's per-video layout::

    frames_root/
      <clip>/images/<frame>.jpg        RGB frames of one person
      <clip>/depth/<frame>.png         one per frame, same stem
      <clip>/normal/<frame>.png
      <clip>/skeleton/<frame>.png      (a ``dwpose/`` folder, Champ's name, is read as the skeleton)

A training pair takes its reference and target from one clip. The maps must be aligned with their frame (same
width and height) and encoded as :mod:`posedive_lib.render.conditions` draws them, the encoding the committed
weights learnt: depth grey, near = bright, background 0; normals as RGB ``(n + 1) / 2`` with x right, y up, z to
the viewer, background 0; an OpenPose-18 skeleton in OpenPose colours on black. Frames and maps are resized to
the generator's image size (frames bicubic, maps bilinear).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.images import read_image, resize_image
from ..data.synthetic.world_conditions import CONDITION_CHANNELS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAP_FOLDERS = {"depth": ("depth",), "normal": ("normal",), "skeleton": ("skeleton", "dwpose")}


@dataclass
class Frames:
    """Frames of a frames folder: ``images`` (N, 3, H, W) in [-1, 1], ``conditions`` (N, 7, H, W) uint8 in guider
    order, ``pids`` (N,) the clip index of each frame, ``clips`` the clip folder names, ``paths`` each frame's file
    (relative to the root)."""

    images: torch.Tensor
    conditions: torch.Tensor
    pids: np.ndarray
    clips: list[str]
    paths: list[str]


def _files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()}


def _map_folder(clip: Path, name: str) -> Path:
    for folder in MAP_FOLDERS[name]:
        if (clip / folder).is_dir():
            return clip / folder
    raise FileNotFoundError(f"{clip}: no {' or '.join(f + '/' for f in MAP_FOLDERS[name])} folder of {name} maps; "
                            "every clip needs images/, depth/, normal/ and skeleton/ (see posedive_lib.generator.frames)")


def _evenly_spaced(stems: list[str], count: int | None) -> list[str]:
    if count is None or len(stems) <= count:
        return stems
    return [stems[i] for i in np.linspace(0, len(stems) - 1, count).round().astype(int)]


def read_frames(root: str | os.PathLike, size: tuple[int, int], frames_per_clip: int | None = None,
                progress: bool = True) -> Frames:
    """Read a frames folder (see the module docstring), resized to ``size`` = (H, W). ``frames_per_clip`` keeps that
    many evenly spaced frames of each longer clip (frames sorted by name), to bound memory on long videos."""
    from tqdm.auto import tqdm

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"frames folder {root} does not exist; give a folder of clips, each with images/, "
                                "depth/, normal/ and skeleton/ (see posedive_lib.generator.frames)")
    if frames_per_clip is not None and frames_per_clip < 2:
        raise ValueError(f"frames_per_clip must be at least 2 (a pair needs two frames of a clip), got {frames_per_clip}")
    clips = sorted(p for p in root.iterdir() if p.is_dir())
    if not clips:
        raise FileNotFoundError(f"{root} has no clip folders; put each video's (or person's) frames in "
                                "<clip>/images/ with their maps in <clip>/depth/, normal/ and skeleton/")
    selected = []
    for clip in clips:
        if not (clip / "images").is_dir():
            raise FileNotFoundError(f"{clip}: no images/ folder; every clip holds its frames in images/")
        frames = _files(clip / "images")
        maps = {name: _files(_map_folder(clip, name)) for name in CONDITION_CHANNELS}
        for stem in frames:
            missing = [name for name in CONDITION_CHANNELS if stem not in maps[name]]
            if missing:
                raise FileNotFoundError(f"{clip.name}/images/{frames[stem].name} has no {' or '.join(missing)} map "
                                        f"({stem}.png in {', '.join(missing)}/): add it or remove the frame")
        for stem in _evenly_spaced(list(frames), frames_per_clip):
            selected.append((clip.name, frames[stem], {name: maps[name][stem] for name in CONDITION_CHANNELS}))
    if not selected:
        raise FileNotFoundError(f"{root}: the clips' images/ folders hold no .png or .jpg frames")
    names = sorted({clip for clip, _, _ in selected})
    index = {name: i for i, name in enumerate(names)}
    images, conditions = [], []
    for clip, frame, maps in tqdm(selected, desc="frames", disable=not progress):
        image = read_image(frame)
        images.append(resize_image(image, size, "bicubic"))
        channels = []
        for name, count in CONDITION_CHANNELS.items():
            array = read_image(maps[name], mode="L" if count == 1 else "RGB")
            if array.shape[:2] != image.shape[:2]:
                raise ValueError(f"{clip}: the {name} map {maps[name].name} is {array.shape[1]} x {array.shape[0]}, its "
                                 f"frame {frame.name} {image.shape[1]} x {image.shape[0]}; maps must align with their frame")
            array = resize_image(array, size, "bilinear")
            channels.append(array[..., None] if array.ndim == 2 else array)
        conditions.append(np.concatenate(channels, axis=-1))
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    maps = torch.from_numpy(np.stack(conditions)).permute(0, 3, 1, 2).contiguous()
    return Frames(pixels, maps, np.array([index[clip] for clip, _, _ in selected]), names,
                  [frame.relative_to(root).as_posix() for _, frame, _ in selected])


def write_clip(root: str | os.PathLike, clip: str, images: np.ndarray, maps: dict[str, np.ndarray],
               names: list[str] | None = None) -> Path:
    """Write one clip in the frames layout: ``images`` (N, H, W, 3) uint8 and ``maps`` ``{"depth": (N, H, W),
    "normal": (N, H, W, 3), "skeleton": (N, H, W, 3)}`` uint8 (e.g. the synthetic world's, to train elsewhere)."""
    from PIL import Image

    folder = Path(root) / clip
    names = names or [f"{i:06d}" for i in range(len(images))]
    for kind, arrays in {"images": images, **{name: maps[name] for name in CONDITION_CHANNELS}}.items():
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for name, array in zip(names, arrays):
            Image.fromarray(np.asarray(array, np.uint8)).save(folder / kind / f"{name}.png")
    return folder


def _frames_listing(frames: Frames, root: Path) -> list:
    return [(path, (root / path).stat().st_size) for path in frames.paths]


def train_on_frames(frames_root: str | os.PathLike, out_dir: str | os.PathLike, start, config,
                    frames_per_clip: int | None = None, progress: bool = True, start_name: str | None = None) -> Path:
    """Train ``start`` on a frames folder (stage 1 on fashion videos, or stage 2 on a Re-ID split laid out one folder
    per person); returns ``out_dir / "generator"``, the saved (EMA) generator, with ``loss.csv`` and ``loss_curve.png``
    beside it.

    ``start`` is a saved generator folder (e.g. ``models/tiny-stage1``, or an earlier stage's output) or a
    :class:`PoseDiveGenerator` (e.g. :func:`~posedive_lib.generator.sizes.sd15_generator`) named by ``start_name``
    (e.g. the folders it was loaded from). An interrupted run resumes; a finished one is reused; a folder that holds a run with
    other inputs (start, frames, settings) is refused rather than mixed.
    """
    import json
    from dataclasses import asdict

    import pandas as pd

    from ..analysis.generator_figures import plot_loss_curves
    from ..analysis.world_figures import save_figure
    from ..paths import atomic_output
    from .data import PairData
    from .model import PoseDiveGenerator, saved_generator, weights_digest
    from .train import train_generator

    out_dir = Path(out_dir)
    if isinstance(start, PoseDiveGenerator):
        if not start_name:
            raise ValueError("name an unsaved start generator (start_name, e.g. the folders it was loaded from), so a "
                             "resumed run can check that it continues from the same start")
        generator, described = start, start_name
    else:
        folder = saved_generator(start)
        generator, described = PoseDiveGenerator.from_pretrained(folder), f"saved generator {weights_digest(folder)}"
    frames = read_frames(frames_root, generator.image_size, frames_per_clip, progress)
    if np.bincount(frames.pids).max() < 2:
        raise ValueError(f"{frames_root}: every clip has a single frame; a training pair needs two frames of one clip")
    record = {"start": described, "image_size": list(generator.image_size), "frames_per_clip": frames_per_clip,
              "frames": _frames_listing(frames, Path(frames_root)), "config": asdict(config)}
    record_path = out_dir / "frames_run.json"
    if record_path.is_file():
        earlier = json.loads(record_path.read_text())
        changed = [key for key in record if earlier.get(key) != json.loads(json.dumps(record[key]))]
        if changed:
            raise ValueError(f"{out_dir} holds a training run with other {', '.join(changed)}; pass another out_dir "
                             "(--out) or delete that folder to start again")
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_output(record_path) as tmp:
            tmp.write_text(json.dumps(record, indent=1))
    data = PairData.from_images(generator, frames.pids, frames.images, frames.conditions)
    final = train_generator(generator, data, out_dir, config, progress)
    save_figure(plot_loss_curves({f"{len(frames.clips)} clips, {len(frames.paths)} frames": pd.read_csv(out_dir / "loss.csv")}),
                out_dir / "loss_curve.png")
    return final
