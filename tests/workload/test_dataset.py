"""The seed's dataset: exact line format, strategies, options, and byte-identical output per seed."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvtest.workload.cli import dataset_main
from kvtest.workload.dataset import DatasetSpec, build, dumps, loads, parse_user, read

P = ["10.0.13.1:8100", "10.0.13.1:8101", "10.0.13.1:8102", "10.0.13.1:8103"]
D = ["10.0.14.1:8200", "10.0.14.1:8201", "10.0.14.1:8202", "10.0.14.1:8203"]
SEED_LINE = (
    '{"model": "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", "max_tokens": 100, "prompt": "Shared context #0: '
    + "This is long context. " * 20
    + 'Question 0: Summarize the context.", "user": "prefill=10.0.13.1:8101;decode=10.0.14.1:8200"}'
)


def test_line_matches_the_seeds_generated_request_byte_for_byte():
    spec = DatasetSpec(strategy="Designate", request_num=1, prefill=[P[1]], decode=[D[0]])
    assert dumps(build(spec)) == SEED_LINE + "\n"


def test_designate_sends_everything_to_the_first_given_nodes():
    reqs = build(DatasetSpec(strategy="Designate", request_num=20, prefill=P, decode=D))
    assert {(r.prefill, r.decode) for r in reqs} == {(P[0], D[0])}
    assert len({r.prompt for r in reqs}) == 20  # each request has its own sequence number


def test_rr_cycles_prefill_and_by_default_picks_decode_at_random():
    reqs = build(DatasetSpec(strategy="RR", request_num=8, prefill=P, decode=D, seed=3))
    assert [r.prefill for r in reqs] == P + P
    assert len({r.decode for r in reqs}) > 1
    rr = build(DatasetSpec(strategy="RR", request_num=8, prefill=P, decode=D, rr_decode="rr"))
    assert [r.decode for r in rr] == D + D


def test_random_depends_on_the_seed_only():
    a = build(DatasetSpec(strategy="Random", request_num=30, prefill=P, decode=D, seed=1))
    b = build(DatasetSpec(strategy="Random", request_num=30, prefill=P, decode=D, seed=1))
    c = build(DatasetSpec(strategy="Random", request_num=30, prefill=P, decode=D, seed=2))
    assert a == b
    assert [r.user for r in a] != [r.user for r in c]


def test_same_prefix_batch_and_shared_contexts():
    same = build(DatasetSpec(strategy="Designate", request_num=10, prefill=P, decode=D, same_prefix_batch=10))
    assert len({r.to_json() for r in same}) == 1
    shared = build(
        DatasetSpec(strategy="Designate", request_num=6, prefill=P, decode=D, requests_per_context=3)
    )
    assert [r.prompt.split(":")[0] for r in shared] == ["Shared context #0"] * 3 + ["Shared context #1"] * 3
    assert len({r.prompt for r in shared}) == 6
    short = build(DatasetSpec(strategy="Designate", request_num=1, prefill=P, decode=D, context_len=3))
    assert short[0].prompt.count("This is long context.") == 3


@pytest.mark.parametrize(
    "kwargs", [{"strategy": "Nope"}, {"prefill": []}, {"context_len": 0}, {"request_num": -1}]
)
def test_bad_specs_are_refused(kwargs):
    base = {"strategy": "RR", "request_num": 1, "prefill": P, "decode": D} | kwargs
    with pytest.raises(ValueError):
        DatasetSpec(**base)


def test_parse_user_and_loads_errors_name_the_line():
    assert parse_user("prefill=a:1;decode=b:2") == {"prefill": "a:1", "decode": "b:2"}
    assert parse_user("") == {}
    with pytest.raises(ValueError, match=r"x\.jsonl:2: max_tokens"):
        loads(SEED_LINE + '\n{"model": "m", "max_tokens": 0, "prompt": "p"}\n', source="x.jsonl")


@given(
    strategy=st.sampled_from(["Random", "Designate", "RR"]),
    n=st.integers(0, 40),
    seed=st.integers(0, 2**32),
    batch=st.integers(1, 5),
)
def test_round_trip_and_determinism(strategy, n, seed, batch):
    spec = DatasetSpec(
        strategy=strategy, request_num=n, prefill=P, decode=D, seed=seed, same_prefix_batch=batch
    )
    text = dumps(build(spec))
    assert text == dumps(build(spec))
    assert loads(text) == build(spec)
    assert all(json.loads(line)["user"].startswith("prefill=") for line in text.splitlines())


def test_cli_writes_byte_identical_files(tmp_path, capsys):
    args = ["--strategy", "Random", "--request-num", "20", "--model", "m", "--seed", "7"]
    args += ["--prefill", *P, "--decode", *D]
    assert dataset_main([*args, "--datapath", str(tmp_path / "a.jsonl")]) == 0
    assert dataset_main([*args, "--datapath", str(tmp_path / "b.jsonl")]) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert len(read(tmp_path / "a.jsonl")) == 20
    assert "20 requests" in capsys.readouterr().out


def test_cli_rejects_a_bad_strategy(tmp_path, capsys):
    rc = dataset_main(
        [
            "--strategy",
            "Bogus",
            "--request-num",
            "1",
            "--prefill",
            "a:1",
            "--decode",
            "b:2",
            "--datapath",
            str(tmp_path / "x.jsonl"),
        ]
    )
    assert rc == 2
