"""Prometheus exposition text -> numbers: the one parser kvtest and its tests read /metrics with
(prometheus_client's text_string_to_metric_families, so HELP/TYPE lines, escaped label values,
histograms and `_created` samples are read as Prometheus reads them). Samples keep the names the
text gives them: prometheus_client renames a counter declared without `_total` (mooncake_master's
master_evicted_key_count) to NAME_total, which this module undoes.

    sums(text)["vllm:prompt_tokens_total"]            # summed over every label set
    total(text, "vllm:kv_load_total", status="ok")    # only samples whose labels include these
    by_label(text, "vllm:mooncake_store_operation_total", "operation")  # {"save_put": 3.0, ...}
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

__all__ = ["by_label", "samples", "sums", "total"]


_COUNTER = re.compile(r"^#\s*TYPE\s+(\S+)\s+counter\s*$", re.MULTILINE)


def samples(text: str) -> Iterator[Sample]:
    """Every sample in the text; raises ValueError on text that is not Prometheus exposition."""
    bare_counters = {name for name in _COUNTER.findall(text) if not name.endswith("_total")}
    for family in text_string_to_metric_families(text):
        renamed = family.type == "counter" and family.name in bare_counters
        for sample in family.samples:
            if renamed and sample.name == family.name + "_total":
                sample = sample._replace(name=family.name)
            yield sample


def sums(text: str, *, model: str | None = None) -> dict[str, float]:
    """Sample name -> value summed over its label sets; `model` keeps only samples whose model_name
    label equals it (samples without that label are kept)."""
    out: dict[str, float] = {}
    for sample in samples(text):
        if model is not None and sample.labels.get("model_name", model) != model:
            continue
        out[sample.name] = out.get(sample.name, 0.0) + float(sample.value)
    return out


def total(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels` (0.0 when none)."""
    return sum(
        float(s.value)
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def by_label(text: str, name: str, label: str) -> dict[str, float]:
    """The samples named `name`, summed per value of `label` ("" for samples without it)."""
    out: dict[str, float] = {}
    for s in samples(text):
        if s.name == name:
            key = s.labels.get(label, "")
            out[key] = out.get(key, 0.0) + float(s.value)
    return out
