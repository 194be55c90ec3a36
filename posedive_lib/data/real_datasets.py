"""Manifests for the real Re-ID data sets, built from their standard folder layouts.

Every loader returns a manifest (:func:`~posedive_lib.data.manifest.new_manifest`) whose paths are
relative to the ``root`` passed in, so ``validate_manifest(frame, root)`` passes, with
``source="real"`` and ``dataset`` set to the canonical name (``market1501``, ``dukemtmc``, ``msmt17``,
``cuhk03_labeled``, ``cuhk03_detected``). Conventions shared by all loaders:

- ``camid`` is the camera number as written in the file name, 1-based (Market ``c1`` -> 1, MSMT17
  field ``01`` -> 1). torchreid and CLIP-ReID subtract 1 when they parse the same names; do the same
  before handing these ids to code that expects 0-based cameras.
- pid -1 (junk boxes) is dropped; pid 0 (Market-1501 distractors) is kept, and only allowed in the
  gallery. Other pids are kept as written (no relabelling): training code relabels train pids to
  ``0..N-1``, and evaluation only compares query pids with gallery pids.
- Files are listed, not opened; ``check_images=True`` also decodes every image and raises
  :class:`~posedive_lib.data.manifest.ManifestError` naming the unreadable rows.
- Hidden files and non-image files (``Thumbs.db``, ``readme.txt``) are ignored; an image whose name does
  not follow the data set's pattern is an error, never skipped silently.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from .manifest import new_manifest, validate_manifest

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
# pid, then the camera number. ``\d+`` (not torchreid's ``\d``) so exports with cameras >= 10 parse back.
MARKET_PATTERN = re.compile(r"(-?\d+)_c(\d+)")
MARKET_EXAMPLE = "0002_c1s1_000451_03.jpg"
JUNK_PID, DISTRACTOR_PID = -1, 0
MSMT_FOLDERS = {"v1": ("train", "test"), "v2": ("mask_train_v2", "mask_test_v2")}
MSMT_LIST_LINE = re.compile(r"(\S+)\s+(\d+)")  # "0000/0000_000_01_0303morning_0008_0.jpg 0"
MSMT_NAME = re.compile(r"\d+_\d+_(\d+)_")  # camera = third underscore field
CUHK03_VARIANTS = ("labeled", "detected")
_SHOWN = 5  # file names quoted in an error message

PUBLISHED_COUNTS = {  # images per split (gallery after dropping junk) and train identities
    "market1501": {"train": 12936, "train_ids": 751, "query": 3368, "gallery": 15913, "cameras": 6},
    "dukemtmc": {"train": 16522, "train_ids": 702, "query": 2228, "gallery": 17661, "cameras": 8},
    "msmt17": {"train": 32621, "train_ids": 1041, "query": 11659, "gallery": 82161, "cameras": 15},
    "cuhk03_labeled": {"train": 7368, "train_ids": 767, "query": 1400, "gallery": 5328, "cameras": 2},
    "cuhk03_detected": {"train": 7365, "train_ids": 767, "query": 1400, "gallery": 5332, "cameras": 2},
}


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def check_before_run(root: str | os.PathLike, folders: Iterable[str] = (), files: Iterable[str] = (),
                     layout: str = "") -> Path:
    """Raise FileNotFoundError naming every missing folder and file under ``root`` at once; return ``root``."""
    root = Path(root)
    expected = f"; expected {layout}" if layout else ""
    if not root.is_dir():
        raise FileNotFoundError(f"data root {root} is not a folder{expected}")
    missing = [f"{name}/" for name in folders if not (root / name).is_dir()]
    missing += [name for name in files if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)} under {root}{expected}")
    return root


def _image_files(folder: Path) -> list[str]:
    """Sorted names of the image files in ``folder`` (hidden and non-image files ignored); warns, naming
    them, about subfolders, whose images are not read (a download unpacked one level too deep)."""
    import warnings

    with os.scandir(folder) as entries:
        entries = [e for e in entries if not e.name.startswith(".")]
    subfolders = sorted(e.name for e in entries if e.is_dir())
    if subfolders:
        warnings.warn(f"{folder}: subfolder(s) {_listed(subfolders)} ignored, only the images directly in "
                      f"{folder.name}/ are read; move their images up if they belong to the data set", stacklevel=2)
    return sorted(e.name for e in entries if e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)


def _market_rows(root: Path, sub: Path, dataset: str) -> list[dict]:
    rows, unmatched, bad_ids, stray_distractors = [], [], [], []
    for split, folder in MARKET_FOLDERS.items():
        for name in _image_files(root / sub / folder):
            match = MARKET_PATTERN.match(name)
            if match is None:
                unmatched.append(f"{folder}/{name}")
                continue
            pid, camid = int(match[1]), int(match[2])
            if pid == JUNK_PID:
                continue
            if pid < JUNK_PID or camid < 1:
                bad_ids.append(f"{folder}/{name}")
            elif pid == DISTRACTOR_PID and split != "gallery":
                stray_distractors.append(f"{folder}/{name}")
            rows.append({"path": (sub / folder / name).as_posix(), "pid": pid, "camid": camid, "split": split,
                         "dataset": dataset, "source": "real"})
    where = root / sub
    if unmatched:
        raise ValueError(f"{dataset}: {len(unmatched)} image name(s) under {where} do not match "
                         f"'{MARKET_PATTERN.pattern}' (pid_cCAMERA..., e.g. {MARKET_EXAMPLE}): {_listed(unmatched)}; "
                         "rename or remove them")
    if bad_ids:
        raise ValueError(f"{dataset}: invalid pid or camera under {where}: {_listed(bad_ids)}; pids must be "
                         ">= -1 and camera numbers start at 1")
    if stray_distractors:
        raise ValueError(f"{dataset}: distractor pid 0 outside the gallery under {where}: "
                         f"{_listed(stray_distractors)}; distractors belong in bounding_box_test")
    return rows


def _require_every_split(rows: list[dict], dataset: str, sources: dict[str, str]) -> list[dict]:
    """``rows``, after naming the splits without images and where they come from: an error when none has any,
    a warning when some are empty (e.g. a train-only export)."""
    import warnings

    found = {row["split"] for row in rows}
    empty = [f"{split} ({source})" for split, source in sources.items() if split not in found]
    if not found:
        raise ValueError(f"{dataset}: no images in {', '.join(empty)}; check that the download was unpacked there")
    if empty:
        warnings.warn(f"{dataset}: no images for {', '.join(empty)}; Re-ID evaluation needs query and gallery images",
                      stacklevel=3)
    return rows


def _load_market_layout(root: str | os.PathLike, sub: Path, dataset: str, check_images: bool,
                        note: str = "") -> pd.DataFrame:
    root = Path(root)
    folders = [(sub / f).as_posix() for f in MARKET_FOLDERS.values()]
    layout = f"{', '.join(f + '/' for f in folders)} with names like {MARKET_EXAMPLE}{note}"
    check_before_run(root, folders, layout=layout)
    sources = {split: f"{(root / sub / folder).as_posix()}/" for split, folder in MARKET_FOLDERS.items()}
    frame = new_manifest(_require_every_split(_market_rows(root, sub, dataset), dataset, sources))
    return validate_manifest(frame, root, check_images=check_images, name=dataset)


def load_market1501(root: str | os.PathLike, check_images: bool = False) -> pd.DataFrame:
    """Market-1501 (Zheng et al., ICCV 2015) from ``root/{bounding_box_train,query,bounding_box_test}``.

    Names ``0002_c1s1_000451_03.jpg``: pid 2, camera 1 (6 cameras). Published: train 12,936 images /
    751 ids, query 3,368, gallery 19,732 raw and 15,913 after dropping junk (pid -1); distractors
    (pid 0) stay in the gallery. Also reads any folder written by
    :func:`posedive_lib.data.export.export_market_layout` (cameras >= 10 included).
    """
    return _load_market_layout(root, Path(), "market1501", check_images)


def load_dukemtmc(root: str | os.PathLike, check_images: bool = False) -> pd.DataFrame:
    """DukeMTMC-reID (Zheng et al., ICCV 2017), same layout as Market-1501, names ``0001_c2_f0046182.jpg``.

    8 cameras. Published: train 16,522 images / 702 ids, query 2,228, gallery 17,661.
    """
    return _load_market_layout(root, Path(), "dukemtmc", check_images)


def load_cuhk03(root: str | os.PathLike, variant: str = "labeled", check_images: bool = False) -> pd.DataFrame:
    """CUHK03-NP, the 767/700 protocol (Zhong et al., CVPR 2017), Market naming, 2 cameras.

    ``root`` holds ``labeled/`` and ``detected/`` (or ``cuhk03-np/`` containing them), each with
    ``bounding_box_train``, ``query``, ``bounding_box_test``. Published: labeled 7,368 train / 1,400
    query / 5,328 gallery; detected 7,365 / 1,400 / 5,332; 767 train ids. ``dataset`` is
    ``cuhk03_labeled`` or ``cuhk03_detected``.
    """
    if variant not in CUHK03_VARIANTS:
        raise ValueError(f"CUHK03 variant must be one of {CUHK03_VARIANTS}, got {variant!r}")
    sub = Path("cuhk03-np", variant) if (Path(root) / "cuhk03-np").is_dir() else Path(variant)
    return _load_market_layout(root, sub, f"cuhk03_{variant}", check_images,
                               note=" (or the same under cuhk03-np/)")


def _msmt_version(root: Path, version: str | None, lists: list[str]) -> str:
    if version is not None:
        if version not in MSMT_FOLDERS:
            raise ValueError(f"MSMT17 version must be one of {tuple(MSMT_FOLDERS)}, got {version!r}")
        return version
    found = [v for v, folders in MSMT_FOLDERS.items() if all((root / f).is_dir() for f in folders)]
    if len(found) > 1:
        raise ValueError(f"MSMT17: both V1 (train/, test/) and V2 (mask_train_v2/, mask_test_v2/) folders under "
                         f"{root}; pass version='v1' or version='v2'")
    if not found:
        missing = [f"{f}/" for folders in MSMT_FOLDERS.values() for f in folders if not (root / f).is_dir()]
        missing += [name for name in lists if not (root / name).is_file()]
        raise FileNotFoundError(f"MSMT17: missing {', '.join(missing)} under {root}; expected train/ and test/ (V1) "
                                f"or mask_train_v2/ and mask_test_v2/ (V2) next to {', '.join(lists)}")
    return found[0]


def _msmt_rows(root: Path, list_name: str, image_dir: str, split: str) -> list[dict]:
    rows, bad = [], []
    try:
        lines = (root / list_name).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise ValueError(f"msmt17: {list_name} is not a UTF-8 text file (byte {error.start}); use the list files "
                         "of the MSMT17 download") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        match = MSMT_LIST_LINE.fullmatch(line.strip())
        camera = MSMT_NAME.match(Path(match[1]).name) if match else None
        if camera is None or int(camera[1]) < 1:
            bad.append(f"line {number} ({line.strip()!r})")
            continue
        rows.append({"path": f"{image_dir}/{match[1]}", "pid": int(match[2]), "camid": int(camera[1]),
                     "split": split, "dataset": "msmt17", "source": "real"})
    if bad:
        raise ValueError(f"msmt17: {list_name} has {len(bad)} malformed line(s): {_listed(bad)}; expected "
                         "'PID_DIR/PID_INDEX_CAMERA_..._.jpg PID', e.g. '0000/0000_000_01_0303morning_0008_0.jpg 0'")
    return rows


def load_msmt17(root: str | os.PathLike, include_val: bool = True, version: str | None = None,
                check_images: bool = False) -> pd.DataFrame:
    """MSMT17 (Wei et al., CVPR 2018), V1 (``train/``, ``test/``) or V2 (``mask_train_v2/``, ``mask_test_v2/``).

    ``version=None`` detects the layout. Images are read from the list files next to the folders:
    ``list_train.txt`` and ``list_val.txt`` (paths relative to the train folder), ``list_query.txt`` and
    ``list_gallery.txt`` (relative to the test folder), lines ``0000/0000_000_01_0303morning_0008_0.jpg 0``;
    the camera is the third underscore field (``01`` -> 1, 15 cameras). Train is ``list_train`` +
    ``list_val`` (as in CLIP-ReID); ``include_val=False`` keeps ``list_train`` only. Pids are kept as in
    the lists: test pids restart at 0, which is harmless since only query and gallery are compared.
    Published: train 32,621 images / 1,041 ids (train + val), query 11,659, gallery 82,161.
    """
    root = Path(root)
    check_before_run(root, layout="an MSMT17 folder")
    lists = {"list_train.txt": "train", "list_val.txt": "train", "list_query.txt": "query",
             "list_gallery.txt": "gallery"}
    if not include_val:
        del lists["list_val.txt"]
    version = _msmt_version(root, version, list(lists))
    folders = dict(zip(("train", "test"), MSMT_FOLDERS[version]))
    check_before_run(root, folders.values(), lists,
                     layout=f"MSMT17 {version.upper()}: {', '.join(f + '/' for f in folders.values())} and list_*.txt")
    rows = [row for name, split in lists.items()
            for row in _msmt_rows(root, name, folders["train" if split == "train" else "test"], split)]
    sources = {split: " + ".join(name for name, s in lists.items() if s == split) for split in ("train", "query", "gallery")}
    rows = _require_every_split(rows, "msmt17", sources)
    return validate_manifest(new_manifest(rows), root, check_images=check_images, name="msmt17")


MARS_TRAIN = "bbox_train"
MARS_PATTERN = re.compile(r"(\d{4})C(\d)T(\d{4})F(\d{3})")  # pid, camera, tracklet, frame
MARS_EXAMPLE = "0001C1T0001F001.jpg"
MARS_LAYOUT = f"{MARS_TRAIN}/<pid>/ folders of frames named like {MARS_EXAMPLE}"


def load_mars_train(root: str | os.PathLike) -> pd.DataFrame:
    """MARS's training frames (Zheng et al., ECCV 2016; video tracklets from Market-1501's cameras, numbering its people
    as Market-1501 does) from ``root/bbox_train/<pid>/``, names ``0001C1T0001F001.jpg`` (pid, camera, tracklet,
    frame): a manifest (split ``train``, data set ``mars``) with a ``tracklet`` column. Published: 509,914 frames of
    625 people. Only the paper's Tables 3 and 4 use it (real images of Market-1501's people, tested on Market-1501's
    query and gallery), so no query or gallery."""
    root = check_before_run(root, [MARS_TRAIN], layout=MARS_LAYOUT)
    rows, unmatched = [], []
    people = sorted(entry for entry in (root / MARS_TRAIN).iterdir() if entry.is_dir() and not entry.name.startswith("."))
    for person in people:
        for name in _image_files(person):
            match = MARS_PATTERN.match(name)
            if match is None or match[1] != person.name:
                unmatched.append(f"{person.name}/{name}")
                continue
            rows.append({"path": f"{MARS_TRAIN}/{person.name}/{name}", "pid": int(match[1]), "camid": int(match[2]),
                         "split": "train", "dataset": "mars", "source": "real", "tracklet": int(match[3])})
    if unmatched:
        raise ValueError(f"mars: {len(unmatched)} frame name(s) under {root / MARS_TRAIN} are not <pid>C<camera>T<tracklet>"
                         f"F<frame> inside their pid's folder (e.g. {MARS_TRAIN}/0001/{MARS_EXAMPLE}): "
                         f"{_listed(unmatched)}; rename or remove them")
    if not rows:
        raise ValueError(f"mars: no frames in {root / MARS_TRAIN}/<pid>/ folders; check that bbox_train.zip was unpacked "
                         "there")
    return validate_manifest(new_manifest(rows), root, name="mars")


DATASETS: dict[str, Callable[..., pd.DataFrame]] = {
    "market1501": load_market1501,
    "dukemtmc": load_dukemtmc,
    "msmt17": load_msmt17,
    "cuhk03": load_cuhk03,
    "cuhk03_labeled": lambda root, **options: load_cuhk03(root, **{"variant": "labeled", **options}),
    "cuhk03_detected": lambda root, **options: load_cuhk03(root, **{"variant": "detected", **options}),
}
_ALIASES = {"market": "market1501", "market-1501": "market1501", "duke": "dukemtmc", "dukemtmc-reid": "dukemtmc",
            "cuhk03-np": "cuhk03", "cuhk03np": "cuhk03"}


def canonical_name(name: str) -> str:
    """The loader's name of a data set name or alias (``market`` -> ``market1501``); unknown names unchanged."""
    return _ALIASES.get(name.lower(), name.lower())


def load_dataset(name: str, root: str | os.PathLike, **options) -> pd.DataFrame:
    """Manifest of a real data set by name (see :data:`DATASETS`); ``options`` go to its loader."""
    key = canonical_name(name)
    if key not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; use one of {sorted(DATASETS)}")
    if root is None or str(root) == "":
        raise FileNotFoundError(f"no folder given for {name}: pass the data set's root folder (data_root, --data-root)")
    if key.startswith("cuhk03_") and options.get("variant", key[7:]) != key[7:]:
        raise ValueError(f"{key} conflicts with variant={options['variant']!r}; use load_dataset('cuhk03', ...)")
    return DATASETS[key](root, **options)


def pooled_identities(manifest: pd.DataFrame) -> pd.DataFrame:
    """Every image of a loaded data set's people in one pool, one pid per person, for a new split (MSMT17-S):
    train, query and gallery together (the old split in ``original_split``), with MSMT17's query and gallery pids,
    which restart at 0, moved above its train pids. Distractors are left out: identities seen only in the gallery
    (Market's pid 0, DukeMTMC-reID's 408 distractor people), who have no query to be found by."""
    names = manifest["dataset"].unique()
    if len(names) != 1:
        raise ValueError(f"pool one data set at a time, got {sorted(names)}; load it with load_dataset")
    pool = manifest.assign(original_split=manifest["split"])
    if canonical_name(names[0]) == "msmt17":  # its test lists number their own people from 0
        train = pool["split"] == "train"
        offset = int(pool.loc[train, "pid"].max()) + 1 if train.any() else 0
        pool = pool.assign(pid=pool["pid"].where(train, pool["pid"] + offset))
    searched = pool.loc[pool["split"] != "gallery", "pid"].unique()  # Market's pid 0 is allowed in the gallery only
    return pool[pool["pid"].isin(searched)].reset_index(drop=True)


def split_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Images, identities and cameras per split (compare with :data:`PUBLISHED_COUNTS`)."""
    grouped = frame.groupby("split", sort=False)
    table = pd.DataFrame({"images": grouped.size(), "ids": grouped["pid"].nunique(),
                          "cameras": grouped["camid"].nunique()})
    return table.reindex([s for s in ("train", "query", "gallery") if s in table.index])
