"""16 concurrent writers x 1,000 shared keys: exactly one winner per key, every value readable,
nothing lost; and the master's counters agree (1,000 PutStarts won, 15,000 rejected)."""

from __future__ import annotations

import threading
from typing import Any

from .harness import StoreCluster, metrics

WRITERS = 16
KEYS = [f"shared-{i:04d}" for i in range(1000)]


def value(writer: int, key: str) -> bytes:
    return f"{writer:02d}|{key}|".encode() * 4


def test_sixteen_writers_one_winner_per_key(cluster: StoreCluster) -> None:
    m = cluster.master(default_kv_lease_ttl=60000)
    writers = [cluster.client(m, segment=16 << 20) for _ in range(WRITERS)]
    errors: list[Any] = []
    go = threading.Barrier(WRITERS)

    def write(w: int) -> None:
        go.wait()
        # each writer walks the keys from its own offset so that writers collide all the time
        order = KEYS[w * 61 % len(KEYS) :] + KEYS[: w * 61 % len(KEYS)]
        for start in range(0, len(order), 50):
            chunk = order[start : start + 50]
            code = writers[w].put_batch(chunk, [value(w, k) for k in chunk])
            if code != 0:
                errors.append((w, start, code))

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    reader = writers[-1]
    got = reader.get_batch(KEYS)
    winners = [int(v[:2]) if v else -1 for v in got]
    assert all(v == value(w, k) for v, w, k in zip(got, winners, KEYS, strict=True)), "a torn or lost value"
    mt = metrics(m)
    assert mt["master_key_count"] == len(KEYS)
    assert mt["master_batch_put_start_items_total"] == WRITERS * len(KEYS)
    assert mt["master_batch_put_start_failed_items_total"] == (WRITERS - 1) * len(KEYS)  # one winner each
    assert len(set(winners)) > 1  # the race really was a race
