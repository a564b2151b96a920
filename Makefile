# YOLO11 Pruning Kit. `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PARAMS ?= params/default.yaml

.DEFAULT_GOAL := help
.PHONY: help demo test check lab install bench notebooks baseline clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

# pip's own exit status decides (pipefail); only its notes about the local package index are filtered out
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
QUIET := { grep -v '^WARNING: Location' || true; }
TORCH := $(shell grep -E '^(torch|torchvision)==' constraints.txt)  # the pins, from constraints.txt alone

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, from the pinned versions: nothing later may pull another build
	$(PIP) install --quiet $(TORCH) 2>&1 | $(QUIET)
	$(PIP) install --quiet -c constraints.txt -e '.[dev]' 2>&1 | $(QUIET)
	# every runtime dependency imports before the stamp says installed
	$(PY) -c "import torch, torchvision, ultralytics, torch_pruning, onnx, onnxruntime, onnxslim, openvino, nncf, matplotlib, papermill, nbval, prunelib"
	touch $(STAMP)

install: $(STAMP) ## create .venv (if absent) and install the kit with its pinned dependencies

demo: $(STAMP) ## run the whole staged pipeline on the embedded default (PARAMS=params/default.yaml)
	$(PY) -m prunelib run --params $(PARAMS)

test: $(STAMP) ## run the full test suite: unit tests, smoke pipeline, nbval over every notebook
	$(PY) -m pytest -n auto --dist loadfile --durations=12 tests

check: $(STAMP) ## the fast tier for the edit-test loop: the tests that train nothing (not marked slow), under 2 minutes
	$(PY) -m pytest -n auto --dist load -m "not slow" --durations=5 tests

lab: $(STAMP) ## start JupyterLab on notebooks/ (as root too, the usual case in a container)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

baseline: $(STAMP) ## train the embedded baseline again from scratch and ship it in baselines/ (then commit it)
	$(PY) -m prunelib baseline --params $(PARAMS)

notebooks: $(STAMP) ## re-execute the source notebooks with their default (smoke) parameters and save their outputs
	$(PY) -m prunelib refresh-notebooks

bench: $(STAMP) ## run the benchmarks under bench/ (long: see README)
	$(PY) bench/recovery.py && $(PY) bench/deployment.py && $(PY) bench/quality.py && $(PY) bench/speedup.py && $(PY) bench/real_speed.py --part latency && $(PY) bench/real_speed.py --part accuracy && $(PY) bench/real_speed.py --part aligned && $(PY) bench/alignment.py && $(PY) bench/overhead.py \
		&& $(PY) bench/tasks.py

clean: ## remove runs/ and caches (keeps .venv)
	rm -rf runs .cache
