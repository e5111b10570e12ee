#!/usr/bin/env bash
# GitHub Actions CPU job: the default suite (root for apt; the tests make no other use of it).
set -euo pipefail
cd "$(dirname "$0")/.."
export KVTEST_CI=1
make test
