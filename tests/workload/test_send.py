"""The send driver: streaming TTFT and usage, failures named, results file, CLI exit codes."""

from __future__ import annotations

import json

import httpx
import respx

from kvtest.workload.cli import send_main
from kvtest.workload.dataset import DatasetSpec, build, write
from kvtest.workload.send import read_results, send_all

URL = "http://proxy:8000/v1/completions"


def sse(*events: object, done: bool = True) -> bytes:
    out = "".join(f"data: {json.dumps(e)}\n\n" for e in events)
    return (out + ("data: [DONE]\n\n" if done else "")).encode()


def chunk(text: str) -> dict:
    return {"choices": [{"index": 0, "text": text}]}


USAGE = {
    "choices": [],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 8}},
}


def reqs(n: int = 3):
    return build(DatasetSpec(strategy="RR", request_num=n, prefill=["p:1", "p:2"], decode=["d:1"]))


@respx.mock
async def test_streamed_request_records_ttft_itl_and_usage():
    route = respx.post(URL).mock(
        return_value=httpx.Response(200, content=sse(chunk("a"), chunk("b"), chunk("c"), USAGE))
    )
    (res,) = await send_all("http://proxy:8000", reqs(1))
    assert res.ok and res.status == 200 and res.text == "abc"
    assert res.ttft_s is not None and 0 <= res.ttft_s <= res.e2e_s
    assert len(res.itl_s) == 2
    assert (res.prompt_tokens, res.completion_tokens, res.cached_tokens) == (12, 3, 8)
    assert (res.prefill, res.decode) == ("p:1", "d:1")
    body = json.loads(route.calls[0].request.content)
    assert body["stream"] is True and body["user"] == "prefill=p:1;decode=d:1"


@respx.mock
async def test_failures_are_named_http_error_event_and_truncated_stream():
    bodies = iter(
        [
            httpx.Response(503, json={"error": {"message": "prefill node down"}}),
            httpx.Response(200, content=sse(chunk("a"), {"error": {"message": "decode died", "code": 500}})),
            httpx.Response(200, content=sse(chunk("a"), done=False)),
        ]
    )
    respx.post(URL).mock(side_effect=lambda _r: next(bodies))
    results = await send_all("http://proxy:8000", reqs(3))
    assert [r.ok for r in results] == [False, False, False]
    assert "HTTP 503" in results[0].error and "prefill node down" in results[0].error
    assert "decode died" in results[1].error
    assert "without [DONE]" in results[2].error


@respx.mock
async def test_non_streaming_and_transport_errors():
    respx.post(URL).mock(
        side_effect=[
            httpx.Response(200, json={"choices": [{"text": "hi"}], "usage": {"completion_tokens": 1}}),
            httpx.ConnectError("refused"),
            httpx.Response(200, content=b"null"),
        ]
    )
    results = await send_all("http://proxy:8000", reqs(3), stream=False)
    assert results[0].ok and results[0].text == "hi" and results[0].ttft_s is None
    assert not results[1].ok and "ConnectError" in results[1].error
    assert not results[2].ok and "unexpected body" in results[2].error  # a 200 with a null body is a failure


@respx.mock
async def test_concurrency_keeps_results_in_dataset_order():
    def echo_user(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=sse(chunk(json.loads(request.content)["user"])))

    respx.post(URL).mock(side_effect=echo_user)
    results = await send_all("http://proxy:8000", reqs(6), concurrency=3)
    assert [r.index for r in results] == list(range(6))
    assert [r.text for r in results] == [r.user for r in reqs(6)]


def test_cli_exit_code_names_failed_requests(tmp_path, capsys):
    path = write(tmp_path / "d.jsonl", reqs(2))
    with respx.mock:
        respx.post(URL).mock(side_effect=[httpx.Response(200, content=sse(chunk("x"))), httpx.Response(500)])
        out = str(tmp_path / "r.jsonl")
        rc = send_main(["--proxy", "http://proxy:8000", "--datapath", str(path), "--out", out])
    assert rc == 1
    captured = capsys.readouterr()
    assert "1/2 requests succeeded" in captured.out
    assert "request 1 (prefill=p:2 decode=d:1) failed: HTTP 500" in captured.err
    assert [r.ok for r in read_results(tmp_path / "r.jsonl")] == [True, False]
    with respx.mock:
        respx.post(URL).mock(return_value=httpx.Response(200, content=sse(chunk("x"))))
        out2 = str(tmp_path / "r2.jsonl")
        assert (
            send_main(["--proxy", "http://proxy:8000", "--datapath", str(path), "--run", "2", "--out", out2])
            == 0
        )
    assert {r.run for r in read_results(out2)} == {2}
