"""Prometheus text for the mock master's /metrics, under the real master's metric names
(mooncake-store/src/master_metric_manager.cpp; names checked against the installed mooncake_master)."""

from __future__ import annotations

from .master import MasterService

_OPS = (
    "exist_key",
    "put_start",
    "put_end",
    "put_revoke",
    "get_replica_list",
    "remove",
    "remove_all",
    "mount_segment",
    "unmount_segment",
    "ping",
)
_BATCH_OPS = ("exist_key", "get_replica_list", "put_start", "put_end", "put_revoke")
_SIZE_BUCKETS = (4096, 65536, 262144, 1048576, 4194304, 16777216, 67108864)


def _gauge(out: list[str], name: str, help_: str, value: float | int, labels: str = "") -> None:
    out.append(f"# HELP {name} {help_}")
    out.append(f"# TYPE {name} gauge")
    out.append(f"{name}{labels} {value}")


def _counter(out: list[str], name: str, value: int) -> None:
    out.append(f"# HELP {name} {name.replace('_', ' ')}")
    out.append(f"# TYPE {name} counter")
    out.append(f"{name} {value}")


def render(svc: MasterService) -> str:
    out: list[str] = []
    c = svc.counters
    _gauge(
        out,
        "master_allocated_bytes",
        "Total memory bytes currently allocated across all segments",
        svc.allocated_bytes,
    )
    _gauge(
        out,
        "master_total_capacity_bytes",
        "Total memory capacity across all mounted segments",
        svc.capacity_bytes,
    )
    out.append("# HELP segment_allocated_bytes Total memory bytes currently allocated of the segment")
    out.append("# TYPE segment_allocated_bytes gauge")
    for seg in svc.segments.values():
        out.append(f'segment_allocated_bytes{{segment="{seg.name}"}} {seg.alloc.allocated}')
    out.append("# HELP segment_total_capacity_bytes Total memory capacity of the mounted segment")
    out.append("# TYPE segment_total_capacity_bytes gauge")
    for seg in svc.segments.values():
        out.append(f'segment_total_capacity_bytes{{segment="{seg.name}"}} {seg.size}')
    _gauge(out, "master_key_count", "Total number of keys managed by the master", len(svc.objects))
    _gauge(out, "master_soft_pin_key_count", "Total number of soft-pinned keys managed by the master", 0)
    _gauge(out, "master_active_clients", "Total number of active clients", len(svc.clients))
    out.append("# HELP master_value_size_bytes Distribution of object value sizes")
    out.append("# TYPE master_value_size_bytes histogram")
    sizes = svc.value_sizes
    for le in _SIZE_BUCKETS:
        out.append(f'master_value_size_bytes_bucket{{le="{le:.6f}"}} {sum(1 for s in sizes if s <= le)}')
    out.append(f'master_value_size_bytes_bucket{{le="+Inf"}} {len(sizes)}')
    out.append(f"master_value_size_bytes_sum {sum(sizes)}")
    out.append(f"master_value_size_bytes_count {len(sizes)}")
    for op in _OPS:
        _counter(out, f"master_{op}_requests_total", c[f"master_{op}_requests_total"])
        _counter(out, f"master_{op}_failures_total", c[f"master_{op}_failures_total"])
        if op == "put_start":
            _counter(out, "master_put_start_alloc_failures_total", c["master_put_start_alloc_failures_total"])
    for op in _BATCH_OPS:
        for suffix in ("requests", "failures", "partial_successes", "items", "failed_items"):
            name = f"master_batch_{op}_{suffix}_total"
            _counter(out, name, c[name])
    for name in (
        "master_successful_evictions_total",
        "master_attempted_evictions_total",
        "master_evicted_key_count",
        "master_evicted_size_bytes",
    ):
        _counter(out, name, c[name])
    return "\n".join(out) + "\n"
