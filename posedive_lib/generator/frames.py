"""Generator training data from folders of frames with their condition maps: fashion videos for stage 1, a Re-ID
training split for stage 2, for real users whose body fits (SMPL via 4D-Humans, as the paper) are made elsewhere.

One folder per clip (a video, or one person of a Re-ID set), laid out like Champ's per-video folders::

    frames_root/
      <clip>/images/<frame>.jpg        RGB frames of one person
      <clip>/depth/<frame>.png         one per frame, same file stem
      <clip>/normal/<frame>.png
      <clip>/skeleton/<frame>.png      (a folder named ``dwpose/`` is read as the skeleton folder)

A training pair takes its reference and target from one clip. The maps must be aligned with their frame (same
width and height), 8-bit, and encoded as :mod:`posedive_lib.render.conditions` draws them, the encoding the
committed weights learnt and the condition gallery uses at generation: depth grey, near = bright, background 0;
normals as RGB ``(n + 1) / 2`` with x right, y up, z to the viewer, background 0; an OpenPose-18 body skeleton in
OpenPose colours on black. Champ's own renders (DWPose with hands and face, its depth and normal conventions) are
other encodings: convert them first. Frames and maps are resized to the generator's image size (frames bicubic,
maps bilinear). Hidden files and folders (names starting with ``.``) are ignored.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.images import read_image, resize_image
from ..data.synthetic.world_conditions import CONDITION_CHANNELS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAP_FOLDERS = {"depth": ("depth",), "normal": ("normal",), "skeleton": ("skeleton", "dwpose")}
EIGHT_BIT_MODES = ("1", "L", "LA", "P", "RGB", "RGBA")
LAYOUT = "every clip needs images/, depth/, normal/ and skeleton/ (see posedive_lib.generator.frames)"


@dataclass(frozen=True)
class FrameFiles:
    """One frame of a clip: its image file and its map files by condition name."""

    clip: str
    image: Path
    maps: dict


@dataclass
class Frames:
    """Frames of a frames folder: ``images`` (N, 3, H, W) uint8, ``conditions`` (N, 7, H, W) uint8 in guider order,
    ``pids`` (N,) the clip index of each frame, ``clips`` the clip folder names, ``paths`` each frame's file
    (relative to the root)."""

    images: torch.Tensor
    conditions: torch.Tensor
    pids: np.ndarray
    clips: list[str]
    paths: list[str]


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _files(folder: Path) -> dict[str, Path]:
    files = {}
    for path in _visible(folder):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            if path.stem in files:
                raise ValueError(f"{folder}: {files[path.stem].name} and {path.name} share the name {path.stem!r}; "
                                 "keep one file per frame")
            files[path.stem] = path
    return files


def _map_folder(clip: Path, name: str) -> Path:
    for folder in MAP_FOLDERS[name]:
        if (clip / folder).is_dir():
            return clip / folder
    raise FileNotFoundError(f"{clip}: no {' or '.join(f + '/' for f in MAP_FOLDERS[name])} folder of {name} maps; {LAYOUT}")


def _evenly_spaced(stems: list[str], count: int | None) -> list[str]:
    if count is None or len(stems) <= count:
        return stems
    return [stems[i] for i in np.linspace(0, len(stems) - 1, count).round().astype(int)]


def frame_files(root: str | os.PathLike, frames_per_clip: int | None = None) -> list[FrameFiles]:
    """The frames of a frames folder (checked: layout, a map of each kind per frame, one file per name), without
    reading them. ``frames_per_clip`` keeps that many evenly spaced frames of each longer clip (sorted by name)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"frames folder {root} does not exist; give a folder of clips: {LAYOUT}")
    if frames_per_clip is not None and frames_per_clip < 2:
        raise ValueError(f"frames_per_clip must be at least 2 (a pair needs two frames of a clip), got {frames_per_clip}")
    clips = [p for p in _visible(root) if p.is_dir()]
    if not clips:
        raise FileNotFoundError(f"{root} has no clip folders; put each video's (or person's) frames in <clip>/images/ "
                                "with their maps in <clip>/depth/, normal/ and skeleton/")
    selected = []
    for clip in clips:
        if not (clip / "images").is_dir():
            raise FileNotFoundError(f"{clip}: no images/ folder; {LAYOUT}")
        frames = _files(clip / "images")
        maps = {name: _files(_map_folder(clip, name)) for name in CONDITION_CHANNELS}
        for stem in frames:
            missing = [name for name in CONDITION_CHANNELS if stem not in maps[name]]
            if missing:
                raise FileNotFoundError(f"{clip.name}/images/{frames[stem].name} has no {' or '.join(missing)} map (a file "
                                        f"named {stem}.png or .jpg in its {'/, '.join(missing)}/ folder): add it or remove the frame")
        selected += [FrameFiles(clip.name, frames[stem], {name: maps[name][stem] for name in CONDITION_CHANNELS})
                     for stem in _evenly_spaced(list(frames), frames_per_clip)]
    if not selected:
        raise FileNotFoundError(f"{root}: the clips' images/ folders hold no .png or .jpg frames")
    return selected


def _read_map(path: Path, mode: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as image:
            depth = image.mode
    except OSError:
        depth = None  # read_image names the unreadable file
    if depth is not None and depth not in EIGHT_BIT_MODES:
        raise ValueError(f"{path} is a {depth} image; condition maps are 8-bit (grey or RGB): save it with values 0 to 255")
    return read_image(path, mode=mode)


def read_frames(root: str | os.PathLike, size: tuple[int, int], frames_per_clip: int | None = None,
                progress: bool = True, files: list[FrameFiles] | None = None) -> Frames:
    """Read a frames folder (see the module docstring), resized to ``size`` = (H, W); ``files``: its
    :func:`frame_files`, when already listed."""
    from tqdm.auto import tqdm

    root = Path(root)
    files = files if files is not None else frame_files(root, frames_per_clip)
    names = sorted({f.clip for f in files})
    index = {name: i for i, name in enumerate(names)}
    images = np.empty((len(files), *size, 3), np.uint8)
    conditions = np.empty((len(files), *size, sum(CONDITION_CHANNELS.values())), np.uint8)
    for i, frame in enumerate(tqdm(files, desc="frames", disable=not progress)):
        image = read_image(frame.image)
        images[i] = resize_image(image, size, "bicubic")
        channels = []
        for name, count in CONDITION_CHANNELS.items():
            array = _read_map(frame.maps[name], "L" if count == 1 else "RGB")
            if array.shape[:2] != image.shape[:2]:
                raise ValueError(f"{frame.clip}: the {name} map {frame.maps[name].name} is {array.shape[1]} x {array.shape[0]}, "
                                 f"its frame {frame.image.name} {image.shape[1]} x {image.shape[0]}; maps must align with their frame")
            array = resize_image(array, size, "bilinear")
            channels.append(array[..., None] if array.ndim == 2 else array)
        conditions[i] = np.concatenate(channels, axis=-1)
    return Frames(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),
                  torch.from_numpy(conditions).permute(0, 3, 1, 2).contiguous(),
                  np.array([index[f.clip] for f in files]), names,
                  [f.image.relative_to(root).as_posix() for f in files])


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


def _fingerprint(files: list[FrameFiles], root: Path, earlier: dict) -> tuple[list, dict]:
    """Each used file (frame and maps) with a digest of its bytes, a run's inputs whatever their timestamps, and each
    file's size and modification time: a file unchanged in both since ``earlier`` (a run record) keeps its digest
    unread."""
    from ..data.manifest import content_hash

    digests = {path: digest for path, digest in earlier.get("frames", [])}
    seen = earlier.get("file_stats", {})
    fingerprint, stats = [], {}
    for path in (p for f in files for p in (f.image, *f.maps.values())):
        name, stat = path.relative_to(root).as_posix(), path.stat()
        stats[name] = [stat.st_size, stat.st_mtime_ns]
        known = seen.get(name) == stats[name] and name in digests
        fingerprint.append([name, digests[name] if known else content_hash(path)])
    return fingerprint, stats


def _usable(files: list[FrameFiles], root: Path) -> list[FrameFiles]:
    """The frames of clips with at least two frames (a pair needs two); warns about the clips left out."""
    counts = {}
    for f in files:
        counts[f.clip] = counts.get(f.clip, 0) + 1
    single = sorted(clip for clip, n in counts.items() if n < 2)
    if len(single) == len(counts):
        raise ValueError(f"{root}: every clip has a single frame; a training pair needs two frames of one clip")
    if single:
        warnings.warn(f"{root}: {len(single)} clip(s) with a single frame (first {single[0]!r}) are not used: a "
                      "training pair needs two frames of one clip", stacklevel=3)
    return [f for f in files if counts[f.clip] >= 2]


def train_on_frames(frames_root: str | os.PathLike, out_dir: str | os.PathLike, start, config,
                    frames_per_clip: int | None = None, progress: bool = True, start_name: str | None = None) -> Path:
    """Train ``start`` on a frames folder (stage 1 on fashion videos, or stage 2 on a Re-ID split laid out one folder
    per person); returns ``out_dir / "generator"``, the saved (EMA) generator, with ``loss.csv`` and ``loss_curve.png``
    beside it.

    ``start`` is a saved generator folder (e.g. ``models/tiny-stage1``, or an earlier stage's output) or a
    :class:`PoseDiveGenerator` (e.g. :func:`~posedive_lib.generator.sizes.sd15_generator`) named by ``start_name``
    (e.g. the folders it was loaded from). The frames are encoded on the accelerator's device. An interrupted run
    resumes and a finished one is reused without decoding a frame (checked against ``frames_run.json``: the start,
    a digest of the bytes of every frame and map, re-read only for files whose size or modification time changed,
    and the settings); a folder whose run has
    begun (a checkpoint or the saved generator) with other inputs is refused rather than mixed.
    """
    import json
    from dataclasses import asdict

    import pandas as pd
    from accelerate import PartialState

    from ..analysis.generator_figures import plot_loss_curves
    from ..analysis.world_figures import save_figure
    from ..paths import atomic_output
    from .data import PairData
    from .model import PoseDiveGenerator, is_saved_generator, saved_generator, weights_digest
    from .train import train_generator

    root, out_dir = Path(frames_root), Path(out_dir)
    if isinstance(start, PoseDiveGenerator):
        if not start_name:
            raise ValueError("name an unsaved start generator (start_name, e.g. the folders it was loaded from), so a "
                             "resumed run can check that it continues from the same start")
        described = start_name
    else:
        described = f"saved generator {weights_digest(saved_generator(start))}"
    files = _usable(frame_files(root, frames_per_clip), root)
    image_size = start.image_size if isinstance(start, PoseDiveGenerator) else \
        json.loads((Path(start) / "generator.json").read_text())["image_size"]
    record_path, final = out_dir / "frames_run.json", out_dir / "generator"
    earlier = json.loads(record_path.read_text()) if record_path.is_file() else {}
    fingerprint, stats = _fingerprint(files, root, earlier)
    record = json.loads(json.dumps({"start": described, "image_size": list(image_size), "frames_per_clip": frames_per_clip,
                                    "frames": fingerprint, "config": asdict(config)}))
    begun = is_saved_generator(final) or (out_dir / "checkpoint").exists()
    if begun and not record_path.is_file():
        raise ValueError(f"{out_dir} holds a generator run without its frames_run.json (not one of train_on_frames); "
                         "pass another out_dir (--out)")
    if record_path.is_file():
        changed = [key for key in record if earlier.get(key) != record[key]]
        if changed and begun:
            raise ValueError(f"{out_dir} holds a training run with other {', '.join(changed)}; pass another out_dir "
                             "(--out) or delete that folder to start again")
        if not changed and is_saved_generator(final):
            return final
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(record_path) as tmp:
        tmp.write_text(json.dumps({**record, "file_stats": stats}, indent=1))
    generator = start if isinstance(start, PoseDiveGenerator) else PoseDiveGenerator.from_pretrained(start)
    frames = read_frames(root, generator.image_size, progress=progress, files=files)
    data = PairData.from_images(generator.to(PartialState().device), frames.pids, frames.images, frames.conditions)
    del frames
    final = train_generator(generator, data, out_dir, config, progress)
    save_figure(plot_loss_curves({f"{len({f.clip for f in files})} clips, {len(files)} frames": pd.read_csv(out_dir / "loss.csv")}),
                out_dir / "loss_curve.png", close=True)
    return final
