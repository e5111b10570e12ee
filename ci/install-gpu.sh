#!/usr/bin/env bash
# Install kvtest into a GPU host's Python, the one whose vLLM (CUDA), torch and Mooncake are already
# installed, without replacing or shadowing any of them:
#   1. kvtest itself: pip install --no-deps --no-build-isolation -e .   (nothing else moves)
#   2. only what is missing (ci/gpu_env.py missing: kvtest's runtime deps vLLM does not bring, e.g.
#      matplotlib or xxhash, and the pure-Python test deps pytest-asyncio, respx, aioresponses ...),
#      with every installed distribution pinned as a constraint: pip fails rather than upgrade one.
# usage: ci/install-gpu.sh [PYTHON]   (default: $KVTEST_GPU_PYTHON, else python3)
# Offline: KVTEST_WHEELS=DIR (wheels from ci/gpu-wheels.sh) installs from DIR with --no-index.
# A pip --target site tree must be on PYTHONPATH when this runs, so its packages count as installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-${KVTEST_GPU_PYTHON:-python3}}
index=()
if [ -n "${KVTEST_WHEELS:-}" ]; then index=(--no-index --find-links "$KVTEST_WHEELS"); fi
pip_install() { "$PY" -m pip install -q --disable-pip-version-check --no-cache-dir "${index[@]}" "$@"; }

# Always (a few seconds): importable from the checkout is not installed, and only an installed
# kvtest registers its pytest plugin (--cluster). --no-build-isolation: the host's setuptools builds it.
"$PY" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
mapfile -t missing < <("$PY" ci/gpu_env.py missing)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-gpu: installing what $PY lacks: ${missing[*]}"
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  "$PY" ci/gpu_env.py constraints "$constraints"
  pip_install -c "$constraints" "${missing[@]}"
fi
"$PY" - <<'PY'
import importlib.metadata as md
for name in ("vllm", "torch", "mooncake-transfer-engine-cuda13", "mooncake-transfer-engine", "nixl"):
    try:
        print(f"install-gpu: {name} {md.version(name)}")
    except md.PackageNotFoundError:
        pass
import kvtest, pytest  # noqa: E401,F401
print(f"install-gpu: kvtest from {kvtest.__file__}")
PY
