"""The proxy's Prometheus metrics: requests, errors and latency histograms per endpoint, per node and leg.

One registry per PDProxy, so several proxies in one process (tests) do not share counters.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Buckets from a fraction of a millisecond (the proxy's own overhead) to minutes (long generations).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class ProxyMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "kvtest_proxy_requests",
            "Client requests by endpoint and status",
            ["endpoint", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "kvtest_proxy_request_duration_seconds",
            "Client request duration, to the last byte",
            ["endpoint"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.leg_requests = Counter(
            "kvtest_proxy_leg_requests",
            "Backend requests by leg, node and outcome",
            ["leg", "node", "outcome"],
            registry=r,
        )
        self.leg_errors = Counter(
            "kvtest_proxy_leg_errors",
            "Backend failures by leg, node and kind",
            ["leg", "node", "kind"],
            registry=r,
        )
        self.leg_seconds = Histogram(
            "kvtest_proxy_leg_duration_seconds",
            "Backend leg duration (prefill: to the full answer; decode: to the last byte relayed)",
            ["leg", "node"],
            buckets=_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "kvtest_proxy_leg_in_flight", "Backend requests in flight", ["leg", "node"], registry=r
        )
        self.kv_params_missing = Counter(
            "kvtest_proxy_kv_transfer_params_missing",
            "NIXL flow: prefill answered without kv_transfer_params (decode recomputes the prompt)",
            ["node", "finish_reason"],
            registry=r,
        )

        # labels() costs 2-4 us a call (a lock and a dict); a request makes a dozen: keep the children.
        self._children: dict[tuple[str, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (metric._name, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def leg_started(self, leg: str, node: str) -> None:
        self._child(self.in_flight, leg, node).inc()

    def leg_done(self, leg: str, node: str, outcome: str, seconds: float) -> None:
        self._child(self.in_flight, leg, node).dec()
        self._child(self.leg_requests, leg, node, outcome).inc()
        self._child(self.leg_seconds, leg, node).observe(seconds)
        if outcome != "ok":
            self._child(self.leg_errors, leg, node, outcome).inc()

    def request_done(self, endpoint: str, status: int, seconds: float) -> None:
        self._child(self.requests, endpoint, str(status)).inc()
        self._child(self.request_seconds, endpoint).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
