#!/usr/bin/env bash
# The GPU suite: `pytest -m gpu --cluster FILE` (tests/gpu, tests/rdma when the file says rdma).
# vLLM (CUDA) and Mooncake are whatever the runner has installed the ordinary way; the cluster
# file says how to start them (hosts[].vllm / mooncake_master / env).
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${1:-${CLUSTER:?usage: ci/test-gpu.sh CLUSTER_FILE}}
shift || true
[ -x .venv/bin/python ] || make install
export KVTEST_REQUIRE=${KVTEST_REQUIRE:-gpu}
.venv/bin/python -m pytest -p no:xdist -m "gpu or rdma" --cluster "$CLUSTER" tests/gpu tests/rdma "$@"
