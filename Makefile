# One entry point for set-up, the main job and the tests. Every install goes through
# constraints.txt, which pins torch==2.13.0 (CPU wheel here, CUDA wheel on GPU machines).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.posedive-installed
PROFILE ?= quick

.PHONY: setup quick run test bench bench-gpu clean-cache

$(STAMP): pyproject.toml constraints.txt requirements-keypoints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	$(PY) -m pip install --quiet --no-deps -r requirements-keypoints.txt
	touch $(STAMP)

setup: $(STAMP)

# The main job on the embedded default (synthetic world rendered with Anny).
quick: PROFILE = quick
quick: run

run: setup
	$(PY) -m posedive_lib.cli run --profile $(PROFILE)

test: setup
	$(PY) -m pytest -q

# CPU benchmarks; *_gpu.py need a CUDA GPU (bench-gpu). sd15_gpu first: augment_images_per_s reads its rate.
bench: setup
	for b in benchmarks/*.py; do case $$b in *_gpu.py) continue;; esac; $(PY) $$b || exit 1; done

bench-gpu: setup
	for b in benchmarks/*_gpu.py; do $(PY) $$b || exit 1; done

clean-cache:
	rm -rf .cache
