"""vllm:mooncake_store_operation_* as MooncakeStorePromMetrics exports them
(vllm/distributed/kv_transfer/kv_connector/v1/mooncake/store/metrics.py): one row per store RPC,
labels operation (lookup_exists, load_get, save_exists, save_put) and status (ok, error, partial_failure)."""

from __future__ import annotations

import time

from simulators.vllm.metrics import Histogram, _counter

OPERATION_TIME_BUCKETS = [
    *(1e-3, 5e-3, 1e-2, 5e-2, 1e-1, 2e-1, 3e-1, 4e-1, 5e-1, 7.5e-1),
    *(1.0, 1.5, 2.0, 3.0, 4.0),
]


class StoreOperationStats:
    def __init__(self) -> None:
        self.created = time.time()
        # (operation, status) -> [calls, keys, bytes, failed_keys]
        self.rows: dict[tuple[str, str], list[int]] = {}
        self.times: dict[tuple[str, str], Histogram] = {}

    def record(
        self,
        operation: str,
        seconds: float,
        num_keys: int,
        *,
        num_bytes: int = 0,
        status: str = "ok",
        num_failed_keys: int = 0,
    ) -> None:
        k = (operation, status)
        row = self.rows.setdefault(k, [0, 0, 0, 0])
        row[0] += 1
        row[1] += num_keys
        row[2] += num_bytes
        row[3] += num_failed_keys
        h = self.times.get(k)
        if h is None:
            h = self.times[k] = Histogram(
                "vllm:mooncake_store_operation_time_seconds",
                "Histogram of Mooncake store communication time.",
                OPERATION_TIME_BUCKETS,
            )
        h.observe(seconds)

    def count(self, operation: str, status: str = "ok") -> int:
        return self.rows.get((operation, status), [0])[0]

    def render(self, base: list[tuple[str, str]], out: list[str]) -> None:
        if not self.rows:
            return
        keys = sorted(self.rows)

        def labels(k: tuple[str, str]) -> list[tuple[str, str]]:
            return [*base, ("operation", k[0]), ("status", k[1])]

        for k in keys:
            self.times[k].render(labels(k), out)
        for i, (name, doc) in enumerate(
            [
                ("vllm:mooncake_store_operation", "Number of Mooncake store communication operations."),
                (
                    "vllm:mooncake_store_operation_keys",
                    "Number of Mooncake store keys touched by operations.",
                ),
                (
                    "vllm:mooncake_store_operation_bytes",
                    "Number of bytes transferred by Mooncake store operations.",
                ),
                (
                    "vllm:mooncake_store_operation_failed_keys",
                    "Number of Mooncake store keys that failed in operations.",
                ),
            ]
        ):
            _counter(out, name, doc, [(labels(k), self.rows[k][i]) for k in keys], self.created)
