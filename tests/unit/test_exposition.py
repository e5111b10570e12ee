"""kvtest.metrics.exposition, the one Prometheus text parser (prometheus_client's): sums over label
sets, label filters, per-label totals, and a clear error for text that is not exposition format."""

from __future__ import annotations

import pytest

from kvtest.metrics.exposition import by_label, sums, total

TEXT = """\
# HELP vllm:mooncake_store_operation_total store operations
# TYPE vllm:mooncake_store_operation_total counter
vllm:mooncake_store_operation_total{model_name="m",operation="save_put"} 3
vllm:mooncake_store_operation_total{model_name="m",operation="lookup_exists"} 5
vllm:mooncake_store_operation_total{model_name="other",operation="save_put"} 2
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{model_name="m",engine="0"} 40
vllm:prompt_tokens_total{model_name="m",engine="1"} 2
# TYPE master_key_count gauge
master_key_count 7
# HELP master_evicted_key_count a counter without _total, as mooncake_master names it
# TYPE master_evicted_key_count counter
master_evicted_key_count 4
# TYPE req_seconds histogram
req_seconds_bucket{le="1.0",path="a \\"quoted\\" b"} 1
req_seconds_bucket{le="+Inf",path="a \\"quoted\\" b"} 2
req_seconds_count{path="a \\"quoted\\" b"} 2
req_seconds_sum{path="a \\"quoted\\" b"} 1.5
"""


def test_sums_over_label_sets_and_by_model() -> None:
    assert sums(TEXT)["vllm:prompt_tokens_total"] == 42
    assert sums(TEXT)["vllm:mooncake_store_operation_total"] == 10
    assert sums(TEXT, model="m")["vllm:mooncake_store_operation_total"] == 8
    assert sums(TEXT, model="m")["master_key_count"] == 7  # no model_name label: kept
    assert sums(TEXT)["req_seconds_count"] == 2
    assert sums(TEXT)["master_evicted_key_count"] == 4  # the name the text gives it, no _total added
    assert "master_evicted_key_count_total" not in sums(TEXT)


def test_total_filters_on_labels_escaped_values_included() -> None:
    assert total(TEXT, "vllm:mooncake_store_operation_total", operation="save_put") == 5
    assert total(TEXT, "vllm:prompt_tokens_total", engine="1") == 2
    assert total(TEXT, "req_seconds_sum", path='a "quoted" b') == 1.5
    assert total(TEXT, "vllm:absent_total") == 0.0


def test_by_label() -> None:
    assert by_label(TEXT, "vllm:mooncake_store_operation_total", "operation") == {
        "save_put": 5.0,
        "lookup_exists": 5.0,
    }


def test_text_that_is_not_exposition_format_is_an_error() -> None:
    with pytest.raises(ValueError):
        sums('vllm:x_total{model_name="m" 1\n')
