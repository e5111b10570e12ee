"""`kvtest bench serve`: vLLM's ShareGPT sampling, generated datasets, metric math, the printed block."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from kvtest.workload import sharegpt, synthetic
from kvtest.workload.bench_serve import calculate_metrics, format_result, main
from kvtest.workload.send import RequestResult
from kvtest.workload.sharegpt import SampleRequest, is_valid_sequence

_VOCAB: dict[str, int] = {}


def tok(text: str) -> list[int]:
    """Word-level tokenizer with a BOS, like a real one in shape (lengths in the tests are in words)."""
    return [0] + [_VOCAB.setdefault(w, len(_VOCAB) + 1) for w in text.split()]


def conv(prompt: str, answer: str) -> dict:
    return {
        "id": "x",
        "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}],
    }


def sharegpt_file(tmp_path):
    entries = [conv(f"question number {i} " + "word " * i, "answer " * (i + 3)) for i in range(12)]
    entries += [{"id": "one-turn", "conversations": [{"from": "human", "value": "hi"}]}, {"id": "none"}]
    entries.append(conv("x", "too short prompt"))  # 3 tokens with BOS: filtered
    path = tmp_path / "sharegpt.json"
    path.write_text(json.dumps(entries))
    return path


def test_is_valid_sequence_matches_vllms_limits():
    assert is_valid_sequence(4, 4) and not is_valid_sequence(3, 100) and not is_valid_sequence(100, 3)
    assert is_valid_sequence(100, 3, skip_min_output_len_check=True)
    assert (
        not is_valid_sequence(1025, 10)
        and not is_valid_sequence(1000, 1049)
        and is_valid_sequence(1000, 1048)
    )


def test_sharegpt_keeps_two_turn_entries_filters_and_is_seeded(tmp_path):
    entries = sharegpt.load(sharegpt_file(tmp_path))
    assert len(entries) == 13
    a = sharegpt.sample(entries, 5, tok, seed=0)
    assert a == sharegpt.sample(entries, 5, tok, seed=0) and a != sharegpt.sample(entries, 5, tok, seed=1)
    assert all(s.prompt_len == len(tok(s.prompt)) and s.prompt_len >= 4 for s in a)
    assert {s.expected_output_len for s in sharegpt.sample(entries, 5, tok, output_len=7)} == {7}
    many = sharegpt.sample(entries, 30, tok)  # only 12 valid: oversampled to the number asked
    assert len(many) == 30 and len({s.prompt for s in many}) == 12


def test_synthetic_lengths_and_shared_prefix():
    rows = synthetic.synthetic(200, tok, seed=3, shared_prefix_ratio=0.5)
    assert rows == synthetic.synthetic(200, tok, seed=3, shared_prefix_ratio=0.5)
    assert all(
        4 <= s.expected_output_len <= 1024 and s.prompt_len + s.expected_output_len <= 2049 for s in rows
    )
    lens = sorted(s.prompt_len for s in rows)
    assert 80 < lens[len(lens) // 2] < 320  # ShareGPT-like median, with a tail
    assert lens[-1] > 3 * lens[len(lens) // 2]
    first_words = {s.prompt.split()[0] for s in rows if len(s.prompt.split()) > 4}
    assert len(first_words) == 1  # everyone starts with the shared prefix
    assert len({s.prompt.split()[0] for s in synthetic.synthetic(50, tok, seed=3)}) > 1
    with pytest.raises(ValueError):
        synthetic.synthetic(1, tok, shared_prefix_ratio=1.5)


def test_sonnet_prompts_share_a_prefix_and_reach_the_input_len():
    rows = synthetic.sonnet(5, tok, input_len=120, prefix_len=40, output_len=9)
    prefix = rows[0].prompt[:60]
    assert all(
        r.prompt.startswith(prefix) and r.prompt_len >= 120 and r.expected_output_len == 9 for r in rows
    )


def test_metrics_follow_vllms_definitions_and_print_its_block():
    samples = [SampleRequest("p", 10, 4), SampleRequest("q", 20, 4), SampleRequest("r", 30, 4)]
    results = [
        RequestResult(0, True, 200, ttft_s=0.1, e2e_s=0.4, completion_tokens=4, itl_s=[0.1, 0.1, 0.1]),
        RequestResult(1, True, 200, ttft_s=0.3, e2e_s=0.3, completion_tokens=1),
        RequestResult(2, False, 500, error="boom"),
    ]
    m = calculate_metrics(samples, results, 2.0)
    assert (m.completed, m.failed, m.total_input, m.total_output) == (2, 1, 30, 5)
    assert m.request_throughput == 1.0 and m.output_throughput == 2.5 and m.total_token_throughput == 17.5
    assert m.latencies_ms["ttft"]["mean"] == pytest.approx(200) and m.latencies_ms["ttft"]["median"] == 200
    assert m.latencies_ms["tpot"]["mean"] == pytest.approx(100)  # only the request with >1 output token
    assert m.latencies_ms["ttft"]["p99"] == pytest.approx(298)  # numpy-style interpolation
    text = format_result(m, request_rate=4.0, max_concurrency=2)
    lines = text.splitlines()
    assert lines[0] == "============ Serving Benchmark Result ============"
    assert "Successful requests:                     2" in lines
    assert "Request rate configured (RPS):           4.00" in lines
    assert "---------------Time to First Token----------------" in lines
    assert "Mean TTFT (ms):                          200.00" in lines
    assert "P99 ITL (ms):                            100.00" in lines
    assert lines[-1] == "=" * 50


def test_serve_end_to_end_against_a_mocked_endpoint(capsys):
    chunks = "".join(f"data: {json.dumps({'choices': [{'text': t}]})}\n\n" for t in ("a", "b", "c"))
    usage = json.dumps({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 3}})
    body = (chunks + f"data: {usage}\n\ndata: [DONE]\n\n").encode()
    with respx.mock:
        route = respx.post("http://node:8100/v1/completions").mock(
            return_value=httpx.Response(200, content=body)
        )
        rc = main(
            ["serve", "--base-url", "http://node:8100", "--model", "m", "--dataset-name", "sonnet",
             "--num-prompts", "6", "--max-concurrency", "2", "--sonnet-input-len", "60",
             "--sonnet-prefix-len", "20", "--sonnet-output-len", "3",
             "--percentile-metrics", "ttft,tpot,itl,e2el"]
        )  # fmt: skip
    assert rc == 0 and route.call_count == 6
    sent = json.loads(route.calls[0].request.content)
    assert sent["max_tokens"] == 3 and sent["stream"] is True and sent["temperature"] == 0.0
    out = capsys.readouterr().out
    assert (
        "Successful requests:                     6" in out
        and "Total generated tokens:                  18" in out
    )
    assert "Maximum request concurrency:             2" in out and "Mean E2EL (ms):" in out


def test_serve_usage_errors():
    assert main([]) == 2
    assert main(["serve", "--model", "m", "--dataset-name", "sharegpt"]) == 2  # needs a path
    assert main(["serve", "--model", "m", "--percentile-metrics", "bogus"]) == 2
