#!/usr/bin/env bash
# The default suite, N times in a row, with K CPU hogs beside it: finds the tests that fail by
# themselves when the machine is busy (a fixed wall-clock budget, a race, a shared resource).
#   ci/soak.sh N [--hog K] [pytest args...]      make soak N=20 HOG=2
# Each run is `make test`'s pytest command (`pytest -n auto tests`; pytest args, when given, replace
# `tests`, e.g. `ci/soak.sh 5 --hog 2 tests/cluster`), with its JUnit XML and output in
# runs/soak-<time>/run-NN.*;
# one line per run, then every test that failed at least once (nodeid, failures/N). Exit 1 if any
# run failed. Hogs: stress-ng --cpu K (installed from Debian when missing), in their own session,
# always stopped: at the end, on an error and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { echo "usage: ci/soak.sh N [--hog K] [pytest args (default: tests)...]" >&2; exit 2; }
[ $# -ge 1 ] && [[ $1 =~ ^[1-9][0-9]*$ ]] || usage
N=$1; shift
HOG=0
if [ "${1:-}" = --hog ]; then
  [[ ${2:-} =~ ^[0-9]+$ ]] || usage
  HOG=$2; shift 2
fi
[ $# -gt 0 ] || set -- tests
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || { echo "soak: $PY missing: run make install first (make soak does)" >&2; exit 2; }

if [ "$HOG" -gt 0 ] && ! command -v stress-ng >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "soak: stress-ng is not installed and this is not root (apt-get install stress-ng)" >&2
    exit 2
  fi
  echo "soak: apt-get install stress-ng"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends stress-ng >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends stress-ng >/dev/null; }
fi

DIR=runs/soak-$(date -u +%Y%m%d-%H%M%S)
mkdir -p "$DIR"
hog_pid=
stop_hogs() {
  if [ -n "$hog_pid" ]; then
    # the hogs' own process group (setsid made stress-ng its leader): the master and its workers
    kill -TERM -- "-$hog_pid" 2>/dev/null || true
    wait "$hog_pid" 2>/dev/null || true
    hog_pid=
  fi
}
finish() {
  local rc=$?
  stop_hogs
  exit "$rc"
}
trap finish EXIT
trap 'echo "soak: interrupted"; stop_hogs; "$PY" ci/soak_report.py table "$DIR" "$N" || true; exit 130' INT TERM

if [ "$HOG" -gt 0 ]; then
  setsid stress-ng --cpu "$HOG" --quiet </dev/null >"$DIR/hogs.log" 2>&1 &
  hog_pid=$!
fi
echo "soak: $N runs of the default suite with $HOG CPU hog(s) on $(nproc) cores; logs in $DIR"
failed_runs=0
for i in $(seq 1 "$N"); do
  tag=$(printf 'run-%02d' "$i")
  t0=$SECONDS
  rc=0
  # `make test`'s command (Makefile: test), plus the XML this table is made from
  "$PY" -m pytest -n auto -p no:cacheprovider --junitxml="$DIR/$tag.xml" "$@" \
    >"$DIR/$tag.log" 2>&1 || rc=$?
  echo "$rc" >"$DIR/$tag.rc"
  [ "$rc" = 0 ] || failed_runs=$((failed_runs + 1))
  "$PY" ci/soak_report.py line "$DIR/$tag.xml" "$i" "$N" $((SECONDS - t0))
done
stop_hogs
"$PY" ci/soak_report.py table "$DIR" "$N" || true
[ "$failed_runs" = 0 ]
