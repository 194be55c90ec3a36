"""Run the ordered notebooks headlessly with papermill, skipping steps whose inputs have not changed.

Each notebook has one cell tagged ``parameters``; :func:`run_notebook` injects the run's values and
writes the executed notebook (figures inline) next to the figures and tables it saves. A stamp of
the notebook's text, its parameters, the library's source and the CPU-kernel pin lets a re-run skip finished steps.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from .cpu_kernels import PINNED_ENVIRONMENT
from .paths import PROJECT_ROOT, atomic_output

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
ORDER = ("01_dataset_bias", "02_generator_training", "03_augmentation", "04_reid_training", "05_custom_splits",
         "06_ablations", "07_tables")
REAL_DATA_NOTEBOOK = "08_real_data"  # the pipeline on a real data set on disk; not part of the synthetic chain


def notebook_path(name: str) -> Path:
    path = NOTEBOOK_DIR / f"{name}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"no notebook {path.name} in {NOTEBOOK_DIR}; the notebooks are {list(ORDER)}")
    return path


_NOT_GIVEN = object()


def start_notebook(out_dir: str | os.PathLike, dataset: str = "synthetic", device: str = "auto",
                   real_data: bool = False, data_root=_NOT_GIVEN) -> Path:
    """A notebook's first step: check its ``dataset`` and ``device`` parameters, point the body model's caches
    into the project, and create ``out_dir`` (returned). ``real_data``: the notebook also runs on a real data set;
    one that passes its ``data_root`` gets it checked (a folder, not None) for a real data set."""
    from .accelerators import select_device
    from .paths import configure_caches

    if dataset != "synthetic" and not real_data:
        raise NotImplementedError(f"this notebook runs on the synthetic world only (dataset='synthetic'), got "
                                  f"dataset={dataset!r}; notebook 1 analyses a real data set, and from Python the library's "
                                  "data.real_datasets, augment.keypoints (annotate_manifest), data.splits and reid "
                                  "modules work on one")
    if dataset != "synthetic" and data_root is not _NOT_GIVEN and (data_root is None or not Path(data_root).is_dir()):
        raise FileNotFoundError(f"data_root {data_root} is not a folder: set data_root to the {dataset} folder (absolute, "
                                "or relative to the project folder, where the notebooks run)")
    select_device(device)
    configure_caches()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def check_real_data_run(dataset: str, tau: float, reid_preset: str, reid_pretrained: str | None,
                        reid_iterations: int | None = None, per_id: int = 15, sample_steps: int = 20,
                        gallery_size: int = 2048, custom_split: str | None = None, split_options: dict | None = None,
                        modes=("both",), sweep_taus=(), sweep_per_id=(), mars_root=None,
                        all_mars: bool = False) -> None:
    """Notebook 8's settings checked up front, not after hours of generator training: a real data set's name, the
    custom split, the gallery modes, the filter threshold and its sweeps, MARS for Tables 3 and 4, the sampler and gallery,
    the Re-ID preset, its length and its backbone weights."""
    from .augment.condition_gallery import MODES
    from .augment.dataset_augmentation import check_sweep
    from .augment.filtering import FilterThresholds
    from .augment.generate import AugmentConfig
    from .data.real_datasets import DATASETS, canonical_name
    from .data.splits import check_split_options
    from .reid.train import preset_config

    if not isinstance(dataset, str) or canonical_name(dataset) not in DATASETS:
        raise ValueError(f"dataset={dataset!r}: this notebook runs on a real data set, one of {sorted(DATASETS)} "
                         "(notebooks 1 to 7 run on the synthetic world)")
    if isinstance(modes, str) or not modes or len(set(modes)) < len(modes) or not set(modes) <= set(MODES):
        raise ValueError(f"modes={modes!r}: give a list of distinct gallery modes out of {list(MODES)}, e.g. ['both'] "
                         "(the paper's full method) or ['both', 'pose', 'viewpoint'] (its Table 2)")
    if custom_split is not None:
        check_split_options(custom_split, **(split_options or {}))
    elif split_options:
        raise ValueError(f"split_options={split_options} go with custom_split ('cam' or 'pose'), which is None")
    FilterThresholds.at(tau)
    AugmentConfig(per_id=per_id, steps=sample_steps)
    check_sweep(sweep_taus, sweep_per_id, per_id)
    if not isinstance(all_mars, bool):
        raise ValueError(f"all_mars is True or False (the paper's Table 4 with mars_root), got {all_mars!r}")
    if all_mars and mars_root is None:
        raise ValueError("all_mars (the paper's Table 4) trains on MARS's frames: set mars_root to the MARS folder too")
    if mars_root is not None:
        if canonical_name(dataset) != "market1501" or custom_split is not None or "both" not in modes:
            raise ValueError(f"mars_root (the paper's Tables 3 and 4) goes with dataset market1501, its own split (custom_split "
                             f"None) and mode 'both' in modes, got {dataset!r}, {custom_split!r} and {modes!r}: MARS "
                             "holds more frames of Market-1501's people")
        from .data.real_datasets import MARS_LAYOUT, MARS_TRAIN, check_before_run

        check_before_run(mars_root, [MARS_TRAIN], layout=MARS_LAYOUT)
    if gallery_size < 1 or (reid_iterations is not None and reid_iterations < 1):
        raise ValueError(f"gallery_size and reid_iterations must be at least 1, got {gallery_size} and {reid_iterations}")
    preset_config(reid_preset, reid_pretrained, reid_iterations)


def _library_digest() -> str:
    digest = hashlib.sha1()
    for path in sorted((PROJECT_ROOT / "posedive_lib").rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _stamp(name: str, parameters: dict) -> str:
    payload = json.dumps({"notebook": hashlib.sha1(notebook_path(name).read_bytes()).hexdigest(),
                          "parameters": parameters, "library": _library_digest(),
                          "cpu_kernels": {name: os.environ.get(name) for name in PINNED_ENVIRONMENT}}, sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()


def _portable(path: Path) -> str:
    """``path`` relative to the project root when inside it (notebooks run there), else as given."""
    try:
        return path.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


def run_notebook(name: str, out_dir: str | os.PathLike, parameters: dict, force: bool = False) -> Path:
    """Execute notebook ``name`` into ``out_dir/<name>.ipynb`` with ``parameters`` (skipped if up to date).

    A failed run leaves ``<name>.failed.ipynb`` (with the traceback) and raises.
    """
    import papermill

    out_dir = Path(out_dir).resolve()
    parameters = {**parameters, "out_dir": _portable(out_dir)}
    executed, stamp_file = out_dir / f"{name}.ipynb", out_dir / ".stamps" / f"{name}.json"
    stamp = _stamp(name, parameters)
    if not force and executed.is_file() and stamp_file.is_file() and json.loads(stamp_file.read_text())["stamp"] == stamp:
        print(f"{name}: up to date, skipped")
        return executed
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = out_dir / f"{name}.failed.ipynb"
    failed.unlink(missing_ok=True)
    os.environ.setdefault("TQDM_DISABLE", "1")  # headless runs: no progress widgets in the saved outputs
    with atomic_output(executed) as tmp:
        try:
            papermill.execute_notebook(str(notebook_path(name)), str(tmp), parameters=parameters, kernel_name="python3",
                                       progress_bar=False, cwd=str(PROJECT_ROOT))
        except Exception:
            if tmp.is_file():
                tmp.replace(failed)
            raise
        _make_portable(tmp, name, out_dir)
    with atomic_output(stamp_file) as tmp:
        tmp.write_text(json.dumps({"stamp": stamp, "parameters": parameters}, indent=1))
    print(f"{name}: executed -> {executed}")
    return executed


def _make_portable(path: Path, name: str, out_dir: Path) -> None:
    """Record project-relative paths in an executed notebook (no machine's folders in committed results)."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    meta = nb.metadata.get("papermill", {})
    meta["input_path"] = _portable(notebook_path(name))
    meta["output_path"] = _portable(out_dir / f"{name}.ipynb")
    text = nbformat.writes(nb).replace(str(PROJECT_ROOT) + "/", "")
    path.write_text(text)


def run_chain(profile: str = "quick", run_name: str | None = None, seeds: tuple[int, ...] = (0, 1, 2),
              names: tuple[str, ...] = ORDER, force: bool = False, results_root: str | os.PathLike | None = None,
              device: str = "auto") -> pd.DataFrame:
    """Run the notebooks in order into ``results/<run name>/``; returns and writes ``summary.csv``."""
    from .accelerators import check_device

    check_device(device)
    out_dir = Path(results_root or PROJECT_ROOT / "results") / (run_name or profile)
    parameters = {"profile": profile, "seeds": list(seeds), "dataset": "synthetic", "data_root": None, "device": device}
    for name in names:
        run_notebook(name, out_dir, parameters, force)
    return collect_summary(out_dir)


def collect_summary(out_dir: str | os.PathLike) -> pd.DataFrame:
    """Gather every ``*_runs.csv`` (one row per experiment, setting and seed) into ``summary.csv``."""
    out_dir = Path(out_dir)
    frames = [pd.read_csv(p) for p in sorted(out_dir.glob("*_runs.csv"))]
    columns = ["experiment", "dataset", "setting", "seed", "mAP", "R1"]
    summary = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    with atomic_output(out_dir / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    return summary
