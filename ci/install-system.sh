#!/usr/bin/env bash
# System pieces the default suite needs, installed once and idempotently:
#  - Debian: etcd-server (real etcd 3.4), libibverbs1 + libnl (mooncake_master and store.so link
#    them even for TCP), iproute2 (ip netns for the cross-machine tests).
#  - PyPI: mooncake-transfer-engine-non-cuda (real mooncake_master binary and store client) into
#    the project venv, so the differential tests can open the real client in-process.
set -euo pipefail
PYBIN=${1:-.venv/bin/python}
need=()
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
# Read the cache once: `ldconfig -p | grep -q` under pipefail fails when grep exits at the first
# match and ldconfig dies of SIGPIPE (status 141), which made every run reinstall libnl.
libs=$(ldconfig -p)
grep -q 'libibverbs\.so\.1 ' <<<"$libs" || need+=(libibverbs1)
grep -q 'libnl-route-3\.so\.200 ' <<<"$libs" || need+=(libnl-3-200 libnl-route-3-200)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "install-system: apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "install-system: not root; missing ${need[*]} (real-store tests will skip)" >&2
  fi
fi
if ! "$PYBIN" -c 'import mooncake.store' >/dev/null 2>&1; then
  "$PYBIN" -m pip install -q mooncake-transfer-engine-non-cuda
fi
