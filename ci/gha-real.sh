#!/usr/bin/env bash
# GitHub Actions real-CPU job: the system pieces need root (apt: etcd-server, libibverbs1, iproute2;
# ip netns for the netns tier), then make test-real (ci/test-real.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export KVTEST_CI=1 KVTEST_REQUIRE=${KVTEST_REQUIRE:-real,netns}
make test-real
