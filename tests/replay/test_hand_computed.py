"""A six-request trace whose hit ratios were worked out by hand, at two cache sizes.

Two conversations, A (hash ids 1, 3, 5) and B (2, 4, 6), alternate one turn at a time, a second apart,
one output token each; block size 512, so one vLLM block per hash id and the n-1 cap allows
(input - 1) // 512 blocks. Hits in tokens:

| request | ids | large cache | small cache (4 blocks) |
| --- | --- | --- | --- |
| A1 | 1 | 0 | 0 |
| B1 | 2 | 0 | 0 |
| A2 | 1 3 | 512 | 512 |
| B2 | 2 4 | 512 | 512 |
| A3 | 1 3 5 | 1024 (cap: 2 blocks) | 1024 |
| B3 | 2 4 6 | 1024 | 512: A3's new block evicted B's 4 (LRU head after A3 touched 1 and 3) |

Small cache, the free queue (head first) after each request: A1 -> 2 3 4 [1]; B1 -> 3 4 [1] [2];
A2 (hits 1, takes 3) -> 4 [2] [3] [1]; B2 (hits 2, takes 4) -> [3] [1] [4] [2]; A3 (hits 1 and 3, takes
the head after them: 4, evicting B's 4) -> [2] [5@4] [3] [1]; B3 hits 2, misses 4.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kvtest.replay.simulation import ReplayConfig, replay
from kvtest.replay.trace import load_trace

TURNS = [[1], [2], [1, 3], [2, 4], [1, 3, 5], [2, 4, 6]]
TOTAL = sum(512 * len(t) for t in TURNS)  # 6144


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    p = tmp_path / "hand.jsonl"
    lines = [
        {"timestamp": 1000 * i, "input_length": 512 * len(ids), "output_length": 1, "hash_ids": ids}
        for i, ids in enumerate(TURNS)
    ]
    p.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return p


@pytest.mark.parametrize(("cache_tokens", "hits"), [(8192, 3072), (2048, 2560)])
def test_known_hit_ratio(trace_file: Path, cache_tokens: int, hits: int) -> None:
    r = replay(load_trace(trace_file), ReplayConfig(nodes=1, block_size=512, cache_tokens=cache_tokens))
    t = r.total()
    assert r.rejected == 0
    assert t.prompt_tokens == TOTAL
    assert t.local_hit_tokens == hits
    assert t.local_hit_rate == pytest.approx(hits / TOTAL)  # 50% and 41.7%
    assert t.computed_tokens == TOTAL - hits
