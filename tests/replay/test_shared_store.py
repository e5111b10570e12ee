"""The replay's shared store keeps the store connector's and the master's rules."""

from __future__ import annotations

import json
from pathlib import Path

from kvtest.replay.shared_store import SharedStore
from kvtest.replay.simulation import ReplayConfig, replay
from kvtest.replay.trace import load_trace


def test_first_put_wins_and_one_copy() -> None:
    s = SharedStore(None)
    s.put([b"a", b"b"])
    s.put([b"a", b"c"])
    assert list(s.keys) == [b"a", b"b", b"c"]
    assert (s.stats.puts, s.stats.put_skipped) == (3, 1)


def test_eviction_drops_the_oldest_leases_first() -> None:
    s = SharedStore(10)
    s.put([bytes([i]) for i in range(9)])  # 9 of 10: at the 90% watermark, not past it
    assert len(s) == 9 and s.stats.evictions == 0
    s.load([bytes([0])])  # a read renews key 0's lease
    s.put([bytes([9])])  # 100% > 90%: evict down to 85%, oldest leases first
    assert s.stats.evictions == 1
    assert bytes([0]) in s.keys and bytes([1]) not in s.keys
    assert len(s) == 8


def test_a_second_node_loads_what_the_first_saved(tmp_path: Path) -> None:
    """Two nodes, round robin, the same 2-block prompt twice: the second request's node has nothing
    locally, and loads the first node's full blocks from the store (n-1 cap: not the last block)."""
    p = tmp_path / "t.jsonl"
    rows = [
        {"timestamp": 1000 * i, "input_length": 1024, "output_length": 2, "hash_ids": [7, 8]}
        for i in range(2)
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = replay(load_trace(p), ReplayConfig(nodes=2, block_size=512, cache_tokens=4096, store_tokens=10_000))
    assert [n.local_hit_tokens for n in r.nodes] == [0, 0]
    assert [n.external_hit_tokens for n in r.nodes] == [0, 512]
    # the second producer finds both keys there and puts nothing (first put wins)
    assert r.store is not None and r.store["puts"] == 2 and r.store["put_skipped"] == 2
