#!/usr/bin/env bash
# The docker tier's pieces, idempotent (seconds when done before):
#  1. a Docker engine: ci/install-docker.sh (Debian docker.io; bridge 198.19.0.1/24 and address pools
#     in 198.19.0.0/16, so containers never take 172.17/16 or kvtest's namespace ranges)
#  2. mmdebstrap and the ssh client (the docker launcher builds its image with the one, the ssh
#     tier reaches its container host with the other)
#  3. the kvtest host image (kvtest/cluster/launchers/image.py), built only when its inputs changed;
#     prints "image kvtest-host:HASH: built|cached in S s"
# Without root and without an engine it says so and exits 0: the docker tests then skip (or fail
# under KVTEST_REQUIRE=docker).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
engine_up() { docker info >/dev/null 2>&1; }
if ! engine_up; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-docker-tier: no Docker engine and not root (docker tests will skip)" >&2
    exit 0
  fi
  bash ci/install-docker.sh
fi
need=()
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bash ci/install-sshd.sh  # openssh-server too, for the ssh launcher's test on this host
"$PY" -m kvtest.cluster.launchers.image
