"""Scraping /metrics: V1 counters and V0 gauges parsed with prometheus_client, deltas, the CLI."""

from __future__ import annotations

import json

import httpx
import respx

from kvtest.metrics.cli import main
from kvtest.metrics.scrape import Snapshot, delta, parse, scrape_all

V1_TEXT = """# HELP vllm:prefix_cache_queries_total Prefix cache queries, in queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{engine="0",model_name="m"} %(q)s
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{engine="0",model_name="m"} %(h)s
# HELP vllm:external_prefix_cache_hits_total External prefix cache hits.
# TYPE vllm:external_prefix_cache_hits_total counter
vllm:external_prefix_cache_hits_total{engine="0",model_name="m"} %(e)s
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} %(r)s
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 1.0
"""
V0_TEXT = """# HELP vllm:gpu_prefix_cache_hit_rate GPU prefix cache block hit rate.
# TYPE vllm:gpu_prefix_cache_hit_rate gauge
vllm:gpu_prefix_cache_hit_rate{model_name="m"} 0.5
vllm:cpu_prefix_cache_hit_rate{model_name="m"} -1.0
"""


def v1(q, h, e=0, r=0):
    return V1_TEXT % {"q": q, "h": h, "e": e, "r": r}


def test_parse_sums_label_sets_and_reads_v1_counters():
    snap = parse(v1(100.0, 64.0, 16.0, 3.0), "n1")
    assert snap.kind == "v1"
    assert snap.counters["queries"] == 100 and snap.counters["hits"] == 64
    assert snap.counters["external_hits"] == 16
    assert snap.counters["requests"] == 4  # length + stop


def test_parse_older_v1_names_and_v0_gauges():
    old = "# TYPE vllm:gpu_prefix_cache_queries_total counter\nvllm:gpu_prefix_cache_queries_total 7\n"
    assert parse(old).counters["queries"] == 7
    snap = parse(V0_TEXT)
    assert snap.kind == "v0" and snap.gauges["gpu_prefix_cache_hit_rate"] == 0.5


def test_delta_is_the_increase_and_hit_rate_is_hits_over_queries():
    row = delta(parse(v1(100, 50, r=1), "n"), parse(v1(300, 200, 16, 5), "n"))
    assert (row.queries, row.hits, row.external_hits, row.requests) == (200, 150, 16, 4)
    assert row.hit_rate == 0.75
    assert delta(None, parse(v1(0, 0), "n")).hit_rate is None
    assert "restarted" in (delta(parse(v1(100, 50), "n"), parse(v1(10, 0), "n")).error or "")
    v0 = delta(parse(V0_TEXT), parse(V0_TEXT))
    assert v0.kind == "v0" and v0.hit_rate == 0.5  # cumulative gauge, read after


def test_snapshot_round_trips_through_json():
    snap = parse(v1(1, 1), "n")
    assert Snapshot.from_dict(json.loads(json.dumps(snap.to_dict()))) == snap


@respx.mock
async def test_scrape_all_reports_unreachable_nodes_as_errors():
    respx.get("http://a:1/metrics").mock(return_value=httpx.Response(200, text=v1(10, 5)))
    respx.get("http://b:2/metrics").mock(side_effect=httpx.ConnectError("refused"))
    respx.get("http://c:3/metrics").mock(return_value=httpx.Response(503, text="no"))
    snaps = await scrape_all(["a:1", "http://b:2", "c:3"])
    assert snaps["a:1"].counters["queries"] == 10
    assert "ConnectError" in (snaps["http://b:2"].error or "")
    assert "HTTP 503" in (snaps["c:3"].error or "")


def test_cli_delta_from_a_saved_snapshot(tmp_path, capsys):
    texts = iter([v1(100, 0, r=20), v1(200, 100, r=40)])
    with respx.mock:
        respx.get("http://n:1/metrics").mock(side_effect=lambda _req: httpx.Response(200, text=next(texts)))
        assert main(["--node", "n:1", "--save", str(tmp_path / "s.json")]) == 0
        capsys.readouterr()
        assert main(["--node", "n:1", "--since", str(tmp_path / "s.json"), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["queries"], row["hits"], row["requests"], row["hit_rate"]) == (100, 100, 20, 1.0)


def test_cli_fails_naming_the_node_it_could_not_scrape(capsys):
    with respx.mock:
        respx.get("http://down:9/metrics").mock(side_effect=httpx.ConnectError("refused"))
        assert main(["--node", "down:9"]) == 1
    assert "down:9" in capsys.readouterr().err
