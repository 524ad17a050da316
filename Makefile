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
  dataset-fashion-mnist fonts-dejavu-core clang libclang-rt-14-dev nodejs

export CCACHE_DIR ?= $(HOME)/.cache/ccache
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_SLOPPINESS := pch_defines,time_macros,include_file_mtime,include_file_ctime
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup system-packages venv configure build comfy stub test test-native test-python test-cuda-wheel cuda-wheel-venv wheel test-wheel demo bench bench-gpu compare unlearning-check precision-check distributed-scaling bench-models bench-check fuzz fuzz-build fuzz-smoke clean help

help:
	@echo "make setup   install what is missing (apt packages, .venv with torch), configure and build"
	@echo "make test    setup, then every test (GoogleTest via ctest, then pytest)"
	@echo "make demo    setup, then run the quickstart workflow on the embedded bench"
	@echo "make bench   native vs Python reference speed and memory (bench/results.json)"
	@echo "make compare the objectives side by side on the bench (bench/comparison.json)"
	@echo "make precision-check  fp32 against bf16 unlearning over several seeds (bench/precision_parity-<cpu bf16 kind>.json)"
	@echo "make distributed-scaling  data-parallel unlearning over 1, 2, 4 ranks (bench/distributed_scaling.json)"
	@echo "make bench-gpu  the bench on a CUDA GPU: PYTHON's CUDA torch, native vs diffusers, and an SD1.5-sized LoRA step (bench/gpu_results.json)"
	@echo "make bench-models  retrain the four embedded bench models and re-measure them"
	@echo "make bench-check   measure the committed bench models (models/bench/report.json)"
	@echo "make build   rebuild only (PYTHON=/path/to/python builds _lethe for another interpreter)"
	@echo "make comfy PYTHON=/path/to/ComfyUI/python   the ComfyUI user's build: _lethe and lethe, no tests (build-comfy/)"
	@echo "make test-cuda-wheel  install.py (make comfy) against torch's CUDA wheel in .venv-cuda-wheel/, then the pack's tests (CI)"
	@echo "make wheel   a wheel of the pack built against PYTHON's torch, its build tag naming that torch (dist/)"
	@echo "make test-wheel  make wheel, pip install --no-build-isolation ., and install.py from the wheel, tested (CI)"
	@echo "make stub    regenerate python_bridge/_lethe.pyi, the native module's type stub"
	@echo "make fuzz    run each libFuzzer target for FUZZ_SECONDS (default 600); crashes land in build-fuzz/findings"

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

CONFIGURE = cmake -S . -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache

configure: $(BUILD)/build.ninja
$(BUILD)/build.ninja:
	$(CONFIGURE) -B $(BUILD) -DPython3_EXECUTABLE=$(PYTHON)

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# The ComfyUI user's build (README): the module and the `lethe` program against the torch of
# ComfyUI's Python, without the tests. Configures every time, so a new PYTHON takes effect.
COMFY_BUILD ?= $(ROOT)/build-comfy
comfy:
	@if [ "$(origin PYTHON)" = file ]; then \
	  echo "make comfy: which Python is ComfyUI's? expected make comfy PYTHON=/path/to/ComfyUI/venv/bin/python"; exit 2; fi
	$(CONFIGURE) -B $(COMFY_BUILD) -DPython3_EXECUTABLE=$(PYTHON) -DLETHE_BUILD_TESTS=OFF
	cmake --build $(COMFY_BUILD) -j $(JOBS)

test: setup
	$(MAKE) test-native test-python fuzz-smoke

test-native:
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-python:
	$(PYTHON) -m pytest tests/python -q

# The README's ComfyUI install (install.py with that Python, which runs `make comfy`) against the
# CUDA torch wheel that ComfyUI users have (it runs on a machine without a GPU), then the pack's
# tests in the mock ComfyUI against that build; CI runs it
# after `make test`. It builds in a copy of the tree (build-cuda-wheel/lethe, the files git
# tracks or would track), so the module it writes into python_bridge/ is not the developer's.
CUDA_WHEEL_VENV ?= $(ROOT)/.venv-cuda-wheel
CUDA_WHEEL_TORCH := torch==2.14.1 torchvision==0.29.1
CUDA_WHEEL_BUILD := $(ROOT)/build-cuda-wheel
CUDA_WHEEL_COPY := $(CUDA_WHEEL_BUILD)/lethe
CUDA_WHEEL_TESTS := tests/python/test_comfy_pack.py tests/python/test_bridge.py tests/python/test_node_results.py tests/python/test_convert.py tests/python/test_install.py tests/python/test_distributed.py

cuda-wheel-venv: $(CUDA_WHEEL_VENV)/.requirements-installed
$(CUDA_WHEEL_VENV)/.requirements-installed: requirements-dev.txt
	@test -x $(CUDA_WHEEL_VENV)/bin/python || $(HOST_PYTHON) -m venv $(CUDA_WHEEL_VENV)
	$(CUDA_WHEEL_VENV)/bin/pip install --quiet --no-build-isolation $(CUDA_WHEEL_TORCH) -r <(grep -v '^torch==' requirements-dev.txt)
	@touch $@

test-cuda-wheel: system-packages cuda-wheel-venv
	@mkdir -p $(CUDA_WHEEL_COPY) && find $(CUDA_WHEEL_COPY) -mindepth 1 -maxdepth 1 ! -name build-comfy -exec rm -rf {} +
	git ls-files -z --cached --others --exclude-standard | tar -c --null -T - | tar -x -C $(CUDA_WHEEL_COPY)
	cd $(CUDA_WHEEL_COPY) && $(CUDA_WHEEL_VENV)/bin/python install.py
	cd $(CUDA_WHEEL_COPY)/python_bridge && $(CUDA_WHEEL_VENV)/bin/python -c \
	  "import torch, _lethe; print('torch', torch.__version__, '_lethe built against', _lethe.torch_version())"
	@! ldd $(CUDA_WHEEL_COPY)/build-comfy/lethe | grep "not found" && ldd $(CUDA_WHEEL_COPY)/build-comfy/lethe | grep -q libtorch_cuda.so \
	  || { echo "test-cuda-wheel: build-comfy/lethe does not find libtorch_cuda and its libraries by its RPATH"; exit 1; }
	$(CUDA_WHEEL_COPY)/build-comfy/lethe --version
	cd $(CUDA_WHEEL_COPY) && LETHE_BUILD=$(CUDA_WHEEL_COPY)/build-comfy $(CUDA_WHEEL_VENV)/bin/python -m pytest -q $(CUDA_WHEEL_TESTS)

# A wheel of the pack for PYTHON's torch (default the project venv's; PYTHON=/path/to/ComfyUI/python
# for ComfyUI), its build tag naming that torch (lethe-0.1.0-1torch2.14.1.cu130-cp311-...whl, by
# cmake/wheel_tag.py), in WHEEL_DIR.
# The build backend is scikit-build-core, installed into PYTHON if missing (a build tool only).
# The build folder build-wheel/ is kept, so a second wheel rebuilds only what changed; with the
# compiler CMake picks for build/ (scikit-build-core would take Python's CXX, g++), ccache shares
# build/'s objects with it.
WHEEL_DIR ?= $(ROOT)/dist
SKBUILD_REQUIREMENT := $(shell grep '^scikit-build-core' requirements-dev.txt)
wheel:
	@$(PYTHON) -c "import scikit_build_core" 2>/dev/null || { echo "make wheel: installing $(SKBUILD_REQUIREMENT) into $(PYTHON)"; \
	  $(PYTHON) -m pip install --quiet "$(SKBUILD_REQUIREMENT)"; }
	@tag=$$($(PYTHON) cmake/wheel_tag.py) || exit 1; set -x; \
	CXX=$${CXX:-c++} $(PYTHON) -m pip wheel --no-build-isolation --no-deps --wheel-dir $(WHEEL_DIR) \
	  --config-settings=wheel.build-tag=$$tag --config-settings=cmake.define.CMAKE_CXX_COMPILER_LAUNCHER=ccache .

# CI: the wheel against the project venv's torch, then tests/wheel: its name and contents,
# `pip install --no-build-isolation .` into a fresh environment, and install.py installing it
# into a pack folder without a built module (ComfyUI-Manager's path), run in the mock ComfyUI.
WHEEL_TEST_DIR := $(ROOT)/build-wheel-test
test-wheel: setup
	rm -rf $(WHEEL_TEST_DIR)
	$(MAKE) wheel WHEEL_DIR=$(WHEEL_TEST_DIR)
	LETHE_WHEEL_DIR=$(WHEEL_TEST_DIR) $(PYTHON) -m pytest -q tests/wheel

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
# The bench on a CUDA GPU (docs/performance.md §GPU): the `lethe` program alone, built in
# build-gpu/ against PYTHON's torch (a CUDA wheel), then bench/gpu_bench.py. GPU_CMAKE_ARGS: more
# configure arguments (where that machine keeps nlohmann-json, CLI11, stb, OpenSSL, zlib).
GPU_BUILD ?= $(ROOT)/build-gpu
GPU_OUT ?= $(ROOT)/bench
GPU_DEADLINE ?= 0
bench-gpu:
	cmake -S . -G Ninja -DCMAKE_BUILD_TYPE=Release -B $(GPU_BUILD) -DPython3_EXECUTABLE=$(PYTHON) \
	  -DLETHE_BUILD_TESTS=OFF -DLETHE_BUILD_PYTHON_MODULE=OFF $(GPU_CMAKE_ARGS)
	cmake --build $(GPU_BUILD) -j $(JOBS) --target lethe
	LETHE_EXE=$(GPU_BUILD)/lethe $(PYTHON) bench/gpu_bench.py --out $(GPU_OUT) --deadline $(GPU_DEADLINE)

unlearning-check: setup
	$(PYTHON) bench/unlearning_check.py

# fp32 against bf16 mixed precision: the default unlearning and evaluation over several seeds
# (bench/precision_parity-<amx_bf16|avx512_bf16>.json, docs/performance.md tables).
precision-check: setup
	$(PYTHON) bench/precision_parity.py

# Every data objective with/without time-frequency selection and every f-divergence with
# near-class/superclass anchors, run and evaluated (bench/comparison.json, README table).
compare: setup
	$(PYTHON) bench/compare_objectives.py

# Data-parallel unlearning over 1, 2 and 4 ranks on this machine (bench/distributed_scaling.json,
# docs/distributed.md table; a few minutes).
distributed-scaling: setup
	$(PYTHON) bench/distributed_scaling.py

# The native module's type stub (python_bridge/_lethe.pyi), generated from its signatures and
# docstrings by pybind11-stubgen; a test fails when it is not current.
stub: build
	cd python_bridge && PYTHONPATH=. $(VENV)/bin/pybind11-stubgen _lethe -o . --exit-code

# Measures the committed bench models against their targets (a few minutes).
bench-check: setup
	$(BUILD)/lethe bench check --out models/bench

# libFuzzer targets (tests/fuzz): the safetensors header reader, the JSON config reader and
# the workflow parser, seeded with the test suite's files and every input that once crashed
# (tests/fuzz/regressions, also replayed by GoogleTest). `make fuzz` runs each for
# FUZZ_SECONDS; `make fuzz-smoke` (part of `make test`) runs the three side by side for 60 s.
FUZZ_BUILD ?= $(ROOT)/build-fuzz
FUZZ_SECONDS ?= 600
FUZZERS := safetensors_header json_config workflow
fuzz-build: system-packages venv
	@test -f $(FUZZ_BUILD)/build.ninja || cmake -S tests/fuzz -B $(FUZZ_BUILD) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_COMPILER_LAUNCHER=ccache \
	  -DLETHE_TORCH_DIR=$$($(PYTHON) -c "import torch; print(torch.__path__[0])") \
	  -DLETHE_CXX11_ABI=$$($(PYTHON) -c "import torch; print(int(torch.compiled_with_cxx11_abi()))")
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	@for f in $(FUZZERS); do mkdir -p $(FUZZ_BUILD)/corpus/$$f $(FUZZ_BUILD)/findings/$$f; \
	  cp -n tests/fuzz/seeds/$$f/* $(FUZZ_BUILD)/corpus/$$f/ 2>/dev/null || true; \
	  cp -n tests/fuzz/regressions/$$f/crash-* $(FUZZ_BUILD)/corpus/$$f/ 2>/dev/null || true; done
	@cp -n workflows/*.json $(FUZZ_BUILD)/corpus/workflow/ 2>/dev/null || true
	@cp -n bench/configs/*.json $(FUZZ_BUILD)/corpus/json_config/

# Runs each target on its corpus; a crash leaves crash-* in findings/<target> and fails.
define run_fuzzer
$(FUZZ_BUILD)/fuzz_$(1) $(FUZZ_BUILD)/corpus/$(1) -max_total_time=$(2) -max_len=16384 -timeout=10 -rss_limit_mb=4096 \
  -artifact_prefix=$(FUZZ_BUILD)/findings/$(1)/ -print_final_stats=1 > $(FUZZ_BUILD)/fuzz_$(1).log 2>&1
endef

fuzz: fuzz-build
	@for f in $(FUZZERS); do echo "fuzz: $$f for $(FUZZ_SECONDS) s"; \
	  $(call run_fuzzer,$$f,$(FUZZ_SECONDS)) || { tail -40 $(FUZZ_BUILD)/fuzz_$$f.log; exit 1; }; \
	  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" $(FUZZ_BUILD)/fuzz_$$f.log; done

fuzz-smoke: fuzz-build
	@pids=""; for f in $(FUZZERS); do ($(call run_fuzzer,$$f,60)) & pids="$$pids $$!"; done; status=0; \
	for p in $$pids; do wait $$p || status=1; done; \
	for f in $(FUZZERS); do printf "fuzz %-20s " $$f; grep -h "stat::number_of_executed_units" $(FUZZ_BUILD)/fuzz_$$f.log || echo; done; \
	if [ $$status != 0 ]; then for f in $(FUZZERS); do tail -30 $(FUZZ_BUILD)/fuzz_$$f.log; done; exit 1; fi

clean:
	rm -rf $(BUILD) $(COMFY_BUILD) $(FUZZ_BUILD) $(CUDA_WHEEL_BUILD) $(ROOT)/build-wheel $(WHEEL_TEST_DIR) $(WHEEL_DIR) python_bridge/_lethe*.so
