# Lethe: the two commands are `make demo` (the main job on the embedded bench) and
# `make test` (every test). Both run `make setup` first, which installs what is missing
# and builds; a second `make setup` with nothing changed does nothing.
SHELL := /bin/bash
ROOT := $(abspath .)
VENV ?= $(ROOT)/.venv
PYTHON ?= $(VENV)/bin/python
BUILD ?= $(ROOT)/build
JOBS ?= $(shell nproc)
HOST_PYTHON ?= python3

APT_PACKAGES := build-essential cmake ninja-build ccache pkg-config zlib1g-dev libssl-dev \
  libgtest-dev libgmock-dev nlohmann-json3-dev libstb-dev libcli11-dev \
  dataset-fashion-mnist fonts-dejavu-core

export CCACHE_DIR ?= $(HOME)/.cache/ccache
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_SLOPPINESS := pch_defines,time_macros,include_file_mtime,include_file_ctime
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup system-packages venv configure build test test-native test-python test-all demo bench compare unlearning-check bench-models bench-check clean help

help:
	@echo "make setup   install what is missing (apt packages, .venv with torch), configure and build"
	@echo "make test    setup, then every test (GoogleTest via ctest, then pytest)"
	@echo "make demo    setup, then run the quickstart workflow on the embedded bench"
	@echo "make bench   native vs Python reference speed and memory (bench/results.json)"
	@echo "make compare the objectives side by side on the bench (bench/comparison.json)"
	@echo "make bench-models  retrain the four embedded bench models and re-measure them"
	@echo "make bench-check   measure the committed bench models (models/bench/report.json)"
	@echo "make build   rebuild only (PYTHON=/path/to/python builds _lethe for another interpreter)"

setup: system-packages venv build

# Installs the Debian packages that are missing (all present: no apt call at all).
system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "setup: installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

# The project venv; reinstalls only when requirements-dev.txt changes.
venv: $(VENV)/.requirements-installed
$(VENV)/.requirements-installed: requirements-dev.txt
	@test -x $(VENV)/bin/python || $(HOST_PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-build-isolation -r requirements-dev.txt
	@touch $@

configure: $(BUILD)/build.ninja
$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=Release \
	  -DPython3_EXECUTABLE=$(PYTHON) -DCMAKE_CXX_COMPILER_LAUNCHER=ccache

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: setup
	$(MAKE) test-native test-python

test-native:
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) -LE slow

test-python:
	$(PYTHON) -m pytest tests/python -q -m "not slow"

# Everything, including tests labelled slow.
test-all: setup
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)
	$(PYTHON) -m pytest tests/python -q

# The main job: the quickstart workflow (SISS with time-frequency selection on the bench's
# artist forget set, sampled, SSCD-scored and evaluated against base and retrained).
DEMO_OUT ?= $(ROOT)/out/quickstart-$(shell date +%Y%m%d-%H%M%S)
demo: setup
	@for m in base retrained descriptor classifier; do test -f models/bench/$$m.safetensors || \
	  { echo "demo: models/bench/$$m.safetensors is missing: run \`make bench-models\`"; exit 1; }; done
	$(BUILD)/lethe run workflows/quickstart.json --out $(DEMO_OUT)

# Retrains the four bench models from scratch (about 4.5 hours on 2 cores; each run resumes
# from its checkpoint if interrupted), then measures them (models/bench/report.json).
bench-models: setup
	$(BUILD)/lethe bench train-diffusion --variant base --out models/bench/base.safetensors
	$(BUILD)/lethe bench train-diffusion --variant retrained --out models/bench/retrained.safetensors
	$(BUILD)/lethe bench train-descriptor --out models/bench/descriptor.safetensors
	$(BUILD)/lethe bench train-classifier --out models/bench/classifier.safetensors
	$(MAKE) bench-check

# Native vs the Python eager reference, side by side (bench/results.json, README table).
bench: setup
	$(PYTHON) bench/run_bench.py

# SISS with time-frequency selection at the default settings, evaluated against base and
# retrained (bench/unlearning.json, README table).
unlearning-check: setup
	$(PYTHON) bench/unlearning_check.py

# Every data objective with/without time-frequency selection and every f-divergence with
# near-class/superclass anchors, run and evaluated (bench/comparison.json, README table).
compare: setup
	$(PYTHON) bench/compare_objectives.py

# Measures the committed bench models against their targets (a few minutes).
bench-check: setup
	$(BUILD)/lethe bench check --out models/bench

clean:
	rm -rf $(BUILD) python_bridge/_lethe*.so
