"""Experiment 5: put/get across machines (the seed's test plan, "test get() and put()").

The seed sent one prompt twice, prefilled by producers on two machines, and read "object already exists"
in the master's log. Here, with a new prompt (its own context number):

1. request A: prefill on producer pA, decode on dA. The producer's MooncakeStoreConnector puts the
   prompt's KV: the master's key count grows by k > 0.
2. request B: the same prompt, prefill on producer pB (another machine when the cluster has one),
   decode on dB, a decode node on a machine other than pB's that never saw the prompt.
Checks:
- one copy stored: the master's key count did not grow in request B (first put wins).
- the dedup where the connector generation puts it: the seed's V0 connector calls put for every block
  and the master rejects the second with OBJECT_ALREADY_EXISTS (master_put_start_failures_total grows);
  a V1 store connector asks exist first and skips the put (master exist-key requests grow, no new put).
- decode on the other machine gets the KV: dB's external prefix-cache hits equal the cacheable prompt
  (full blocks of prompt - 1 tokens, vLLM's n-1 cap, minus what dB had locally), exact against the model.
- nodes without one PYTHONHASHSEED share nothing: every node derives its first block's parent hash from
  it, so the same prompt gets different keys on every node. When the cluster file sets no hash_seed the
  experiment expects exactly that (two copies, no external hits) and says so in plain words.

If no key reaches the master after request A on a simulator cluster, the fake vLLM has no store
connector: the experiment is "not available" with that reason, never a PASS.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from kvtest.cluster.render import NodeEndpoint
from kvtest.experiments.prefix import _latency
from kvtest.experiments.session import ExperimentSession, hostport
from kvtest.metrics.exposition import by_label
from kvtest.report.model import Check, ExperimentResult, NodeRow
from kvtest.workload.dataset import DatasetRequest, make_prompt

NAME = "putget"
TITLE = "5. Put/get across machines"
FIRST_INDEX = 400
NO_HASH_SEED = (
    "These nodes have no common PYTHONHASHSEED: each one hashes the same prompt to different keys, so "
    "they share nothing through the store; every producer stores its own copy and decode loads nothing. "
    "Set hash_seed in the cluster file (PYTHONHASHSEED on every vLLM node) to share KV."
)
HASH_SEED_NOTE = (
    "Every node here runs with PYTHONHASHSEED={seed}. Without one common value the nodes would hash the "
    "same prompt to different keys and share nothing: two copies in the store and no external hits "
    "(kvtest expect --no-shared-hash-seed computes that case)."
)


class NotAvailable(Exception):
    """The cluster cannot run this experiment; the message says why in plain words."""


@dataclass
class Route:
    producer_a: NodeEndpoint
    decode_a: NodeEndpoint
    producer_b: NodeEndpoint
    decode_b: NodeEndpoint


def pick_route(session: ExperimentSession) -> Route:
    prefill, decode = session.prefill, session.decode
    if not session.cluster.master_admin_url:
        raise NotAvailable(f"cluster {session.cluster.name!r} has no mooncake_master")
    if not session.uses_store:
        raise NotAvailable("no node uses MooncakeStoreConnector, so nothing goes through the store")
    if len(prefill) < 2 or len(decode) < 2:
        raise NotAvailable(
            f"needs 2 prefill and 2 decode nodes (cluster {session.cluster.name!r} has "
            f"{len(prefill)} and {len(decode)})"
        )
    a = prefill[0]
    b = next((p for p in prefill[1:] if p.machine != a.machine), prefill[1])
    da = next((d for d in decode if d.machine == a.machine), decode[0])
    db = next((d for d in decode if d is not da and d.machine != b.machine), None)
    db = db or next(d for d in decode if d is not da)
    return Route(a, da, b, db)


async def store_operations(node: NodeEndpoint) -> dict[str, float]:
    """vllm:mooncake_store_operation_total per operation label (a real V1 MooncakeStoreConnector exports
    it: lookup_exists, load_get, save_exists ...); {} when the node does not export it."""
    try:
        async with httpx.AsyncClient(timeout=10.0) as client:
            text = (await client.get(node.metrics_url)).text
        return by_label(text, "vllm:mooncake_store_operation_total", "operation")
    except (httpx.HTTPError, ValueError):
        return {}


def _master_sum(metrics: dict[str, float], part: str) -> float:
    return sum(v for k, v in metrics.items() if part in k)


async def run_putget(session: ExperimentSession) -> ExperimentResult:
    await session.start()
    route = pick_route(session)
    cluster = session.cluster
    prompt = make_prompt(FIRST_INDEX + session.seed, FIRST_INDEX + session.seed, 20, session.salt)

    def request(p: NodeEndpoint, d: NodeEndpoint) -> DatasetRequest:
        return DatasetRequest(session.model_name, 100, prompt, f"prefill={hostport(p)};decode={hostport(d)}")

    keys0 = len(cluster.master_keys())
    step_a = await session.send([request(route.producer_a, route.decode_a)], run=1, label=f"{NAME}-a")
    keys1, m1 = len(cluster.master_keys()), cluster.master_metrics()
    new_a = keys1 - keys0
    if new_a <= 0 and session.is_fake and all(r.ok for r in step_a.results):
        raise NotAvailable(
            f"no key reached the master after {route.producer_a.name} prefilled the prompt: the fake vLLM "
            "has no store connector yet (simulators/vllm/kv_connector.py offers only NoKVConnector)"
        )
    ops1 = await store_operations(route.producer_b)
    step_b = await session.send([request(route.producer_b, route.decode_b)], run=2, label=f"{NAME}-b")
    ops2 = await store_operations(route.producer_b)
    keys2, m2 = len(cluster.master_keys()), cluster.master_metrics()
    new_b = keys2 - keys1

    rows = session.judge([step_a, step_b], external=True)
    result = ExperimentResult(
        name=NAME,
        title=TITLE,
        description=(
            f"One prompt prefilled by {route.producer_a.name} ({route.producer_a.machine}) and then by "
            f"{route.producer_b.name} ({route.producer_b.machine}); {route.decode_b.name} "
            f"({route.decode_b.machine}) decodes the second and must load the KV from the store."
        ),
        metric=session.metric,
        nodes=rows,
        latencies=[_latency(r) for s in (step_a, step_b) for r in s.results],
        notes=list(session.notes),
    )
    a, b, db = route.producer_a, route.producer_b, route.decode_b
    if a.machine == b.machine:
        result.notes.append(
            f"Every prefill node of this cluster is on {a.machine}, so both producers are there; "
            f"the KV still crosses to {db.name} on {db.machine}."
        )
    elif a.host and a.host == b.host:
        # one host, several GPU sets: say so rather than claim the KV crossed a network
        if db.host == a.host:
            where = f"also on host {a.host}: the KV moves between GPUs of one host, not between hosts"
        else:
            where = f"on host {db.host}: the KV crosses hosts"
        result.notes.append(
            f"Both producers are on host {a.host} ({a.machine}, {b.machine}); {db.name} ({db.machine}) is "
            f"{where}."
        )
    shared = session.shared_hash_seed
    result.checks.append(
        Check(
            "first producer stored the prompt",
            "PASS" if new_a > 0 else "FAIL",
            f"the master's key count grew by {new_a} after {route.producer_a.name} prefilled",
        )
    )
    if shared:
        result.checks.append(
            Check(
                "one copy stored",
                "PASS" if new_b == 0 and new_a > 0 else "FAIL",
                f"{route.producer_b.name} prefilling the same prompt added {new_b} keys (expected 0): "
                f"{keys2 - keys0} keys for one prompt",
            )
        )
        rejected = _master_sum(m2, "put_start_failures") - _master_sum(m1, "put_start_failures")
        exists = _master_sum(m2, "exist_key_requests") - _master_sum(m1, "exist_key_requests")
        puts = _master_sum(m2, "put_start_requests") - _master_sum(m1, "put_start_requests")
        if session.metric == "v0":
            result.checks.append(
                Check(
                    "master rejected the second put (object_already_exists)",
                    "PASS" if rejected > 0 else "FAIL",
                    f"{int(rejected)} put_start rejections during {route.producer_b.name}'s prefill (the "
                    "seed's V0 connector puts every block; the master refuses a key it holds)",
                )
            )
        else:
            # The producer's own vllm:mooncake_store_operation_total{operation="save_exists"} says it
            # checked; without it, the master's exist-key requests (decode's lookups count there too).
            saved_exists = ops2.get("save_exists", 0.0) - ops1.get("save_exists", 0.0)
            asked = saved_exists if "save_exists" in ops2 else exists
            where = (
                f"{route.producer_b.name}'s save_exists operations"
                if "save_exists" in ops2
                else "exist-key requests at the master"
            )
            result.checks.append(
                Check(
                    "second producer found the KV and did not put it",
                    "PASS" if asked > 0 and puts == 0 else "FAIL",
                    f"{int(asked)} {where} and {int(puts)} put_start requests during "
                    f"{route.producer_b.name}'s prefill (a V1 store connector checks before it puts)",
                )
            )
        result.notes.append(HASH_SEED_NOTE.format(seed=session.hash_seed))
    else:
        result.checks.append(
            Check(
                "no sharing without a common PYTHONHASHSEED",
                "PASS" if new_b == new_a else "FAIL",
                f"{route.producer_b.name} added {new_b} keys of its own (the first producer added {new_a})",
            )
        )
        result.notes.append(NO_HASH_SEED)
    result.checks.append(_decode_check(session, route, rows, prompt, m1, m2))
    return result


def _decode_check(
    session: ExperimentSession,
    route: Route,
    rows: list[NodeRow],
    prompt: str,
    m1: dict[str, float],
    m2: dict[str, float],
) -> Check:
    """Did decode on the other machine get the KV? V1 counts it (external prefix-cache hits); V0 has no
    such metric, so the master's get_replica_list answers for the seed's V0 connector's get()."""
    name, shared = route.decode_b.name, session.shared_hash_seed
    if session.metric == "v0":
        gets = _master_sum(m2, "get_replica_list_requests") - _master_sum(m1, "get_replica_list_requests")
        misses = _master_sum(m2, "get_replica_list_failures") - _master_sum(m1, "get_replica_list_failures")
        found = gets - misses
        return Check(
            f"{name} fetched the KV from the store",
            "PASS" if (found > 0 and misses == 0) == shared and (shared or found == 0) else "FAIL",
            f"{int(gets)} lookups at the master during request B, {int(misses)} found nothing (V0 nodes "
            "export no external-hit counter; the master's get_replica_list counts the connector's get)",
        )
    row = next(r for r in rows if r.node == name)
    ext = int(row.detail["measured"]["external_hits"])
    expected = row.detail.get("expected") or {}
    want = int(expected.get("external_hits", 0))
    n = len(session.tokenize(prompt)) if session.tokenize else 0
    cacheable = (max(n - 1, 0) // session.block_size) * session.block_size
    return Check(
        f"{name} loaded the KV from the store",
        "PASS" if ext == want and (ext > 0) == shared else "FAIL",
        f"external prefix-cache hits {ext} tokens, expected {want} (prompt {n} tokens, cacheable "
        f"{cacheable} = full blocks of prompt - 1, less what {name} held locally)",
    )
