# shellcheck shell=bash
# Source this on a GPU host whose vLLM + Mooncake are a pip --target site tree rather than an
# ordinary install:   source ci/gpu-site-env.sh SITE [SYSLIBS] [IPROUTE2]
#   SITE      the site tree (vLLM 0.25.1, mooncake-transfer-engine-cuda13 0.3.14 and their deps)
#   SYSLIBS   where Debian's libibverbs1, ibverbs-providers, libnl-3-200, libnl-route-3-200 and
#             libnuma1 were unpacked (dpkg -x), for Mooncake's shared objects; empty: the system's
#   IPROUTE2  where iproute2 and its libraries were unpacked, for a host without `ip` (namespaces)
# It puts `vllm`, `mooncake_master` (and `ip`) wrappers first on PATH, so the committed cluster files
# (vllm: vllm) run unchanged, and exports what every node inherits: PYTHONPATH, LD_LIBRARY_PATH,
# VLLM_USE_FLASHINFER_SAMPLER=0 (flashinfer is not in the tree), HF_HUB_OFFLINE, VLLM_NO_USAGE_STATS,
# and NCCL_NVLS_ENABLE=0 (NVLink multicast off on shared hosts).
site=${1:?usage: source ci/gpu-site-env.sh SITE [SYSLIBS] [IPROUTE2]}
syslibs=${2:-}
iproute2=${3:-}
bin=${KVTEST_SITE_BIN:-/tmp/kvtest-site-bin}
mkdir -p "$bin"
py=${KVTEST_GPU_PYTHON:-$(command -v python3)}
printf '#!/bin/sh\nexec %s -m vllm.entrypoints.cli.main "$@"\n' "$py" >"$bin/vllm"
printf '#!/bin/sh\nexec %s "$@"\n' "$site/mooncake/mooncake_master" >"$bin/mooncake_master"
if [ -n "$iproute2" ]; then
  # through the loader with --library-path: ip's libraries must not leak into `ip netns exec CMD`
  loader=$(ls /lib64/ld-linux-x86-64.so.2 2>/dev/null || ls /lib/x86_64-linux-gnu/ld-linux-x86-64.so.2)
  libs="$iproute2/usr/lib/x86_64-linux-gnu:$iproute2/lib/x86_64-linux-gnu"
  ipbin=$iproute2/bin/ip  # Debian's sbin/ip is an absolute link to /bin/ip, which is not there
  printf '#!/bin/sh\nexec %s --library-path %s %s "$@"\n' "$loader" "$libs" "$ipbin" >"$bin/ip"
fi
chmod +x "$bin"/*
export PATH="$bin:$PATH"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "$syslibs" ]; then
  export LD_LIBRARY_PATH="$syslibs/usr/lib/x86_64-linux-gnu:$syslibs/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export VLLM_USE_FLASHINFER_SAMPLER=0 HF_HUB_OFFLINE=1 VLLM_NO_USAGE_STATS=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
