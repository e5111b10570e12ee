#!/usr/bin/env bash
# Run every benchmark; each prints its own figures and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in ci/bench/bench_*.py; do
  echo "== $f"
  .venv/bin/python "$f"
done
