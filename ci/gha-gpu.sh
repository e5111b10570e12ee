#!/usr/bin/env bash
# gpu.yml's one step: a site-tree runner (KVTEST_GPU_SITE set) gets ci/gpu-site-env.sh first, then
# exactly what a person types on a GPU host: make test-gpu CLUSTER=...
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${KVTEST_GPU_SITE:-}" ]; then
  # shellcheck source=ci/gpu-site-env.sh
  source ci/gpu-site-env.sh "$KVTEST_GPU_SITE" "${KVTEST_GPU_SYSLIBS:-}"
fi
exec make test-gpu CLUSTER="${CLUSTER:?set CLUSTER (a cluster file)}"
