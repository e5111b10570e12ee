#!/usr/bin/env bash
# The GPU suite on a GPU host where vLLM (CUDA) and Mooncake are already installed (or a site tree:
# `source ci/gpu-site-env.sh SITE SYSLIBS` first). One command:
#   ci/test-gpu.sh CLUSTER_FILE [pytest args]          (= make test-gpu CLUSTER=FILE)
# 1. ci/install-gpu.sh: kvtest and only its missing pure-Python deps into that Python (vLLM, torch,
#    Mooncake untouched; offline with KVTEST_WHEELS=DIR)
# 2. pytest --cluster FILE on tests/gpu and tests/scenarios (the seed's five experiments, exact
#    counters), plus tests/rdma when the file's mooncake.protocol is rdma; one cluster for the session.
# KVTEST_REQUIRE (default gpu,real,netns,rdma) turns skips of what the file needs into failures.
# KVTEST_GPU_TESTS overrides the test paths.
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=${1:-${CLUSTER:?usage: ci/test-gpu.sh CLUSTER_FILE [pytest args]}}
shift || true
PY=${KVTEST_GPU_PYTHON:-python3}
bash ci/install-gpu.sh "$PY"
export KVTEST_REQUIRE=${KVTEST_REQUIRE:-gpu,real,netns,rdma}
protocol=$("$PY" -c 'import sys; from kvtest.cluster.schema import load_cluster; print(load_cluster(sys.argv[1]).mooncake.protocol)' "$CLUSTER")
read -r -a tests <<<"${KVTEST_GPU_TESTS:-tests/gpu tests/scenarios}"
if [ "$protocol" = rdma ] && [ -z "${KVTEST_GPU_TESTS:-}" ]; then tests+=(tests/rdma); fi
mkdir -p runs
# -p no:xdist: one cluster, started once, serves every test of the session
exec "$PY" -m pytest -p no:xdist -p no:cacheprovider -rs --cluster "$CLUSTER" "${tests[@]}" "$@"
