#!/usr/bin/env bash
# Download, on a machine with a package index, the wheels an offline GPU host needs for
# ci/install-gpu.sh (KVTEST_WHEELS=DIR there). Wheels only, for the GPU host's Python and platform:
#   ci/gpu-wheels.sh DIR                      # kvtest's runtime + GPU test requirements, with deps
#   ci/gpu-wheels.sh DIR NAME==VER ...        # just these (e.g. nixl-cu13==1.5.1 nixl==1.5.1)
# GPU_PYTHON_VERSION (default 3.12) and GPU_PLATFORMS (default manylinux_2_28 down to manylinux2014,
# x86_64) say which. KVTEST_WHEELS_NO_DEPS=1 fetches the named wheels alone: what the host lacks is
# usually only the pure-Python test deps (run `python3 ci/gpu_env.py missing` there to see which:
# on the H200 host with vLLM 0.25.1 they were pytest-asyncio, respx and aioresponses).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:?usage: ci/gpu-wheels.sh DIR [REQUIREMENT ...]}
shift
PYV=${GPU_PYTHON_VERSION:-3.12}
read -r -a platforms <<<"${GPU_PLATFORMS:-manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64}"
if [ "$#" -eq 0 ]; then
  mapfile -t reqs < <(python3 -c 'import sys; sys.path.insert(0, "ci"); import gpu_env; print("\n".join(gpu_env.requirements()))')
else
  reqs=("$@")
fi
plat_args=()
for p in "${platforms[@]}"; do plat_args+=(--platform "$p"); done
deps=()
if [ "${KVTEST_WHEELS_NO_DEPS:-0}" = 1 ]; then deps=(--no-deps); fi
mkdir -p "$DIR"
python3 -m pip download -q --only-binary=:all: --python-version "$PYV" --implementation cp \
  "${plat_args[@]}" "${deps[@]}" -d "$DIR" "${reqs[@]}"
ls -l "$DIR"
