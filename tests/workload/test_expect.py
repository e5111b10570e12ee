"""The expectation model on hand-computed cases (V1 tokens with the n-1 cap, V0 block hit rate, eviction)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from kvtest.expect import (
    ClusterModel,
    V0HitRate,
    V0Node,
    V1Node,
    builtin_tokenize,
    expect,
    load_tokenizer,
    main,
)
from kvtest.workload.dataset import DatasetSpec, build, read, write

TINY_LLAMA = str(Path(__file__).resolve().parents[2] / "fixtures" / "models" / "tiny-llama")
P = ["10.0.13.1:8100", "10.0.13.1:8101", "10.0.13.1:8102", "10.0.13.1:8103"]
D = ["10.0.14.1:8200", "10.0.14.1:8201", "10.0.14.1:8202", "10.0.14.1:8203"]


def test_v1_second_identical_request_hits_all_full_blocks_below_the_n_minus_1_cap():
    node = V1Node(block_size=4)
    node.serve(list(range(10)), 5)
    node.serve(list(range(10)), 5)
    assert (node.requests, node.queries, node.hits) == (2, 20, 8)


def test_v1_prompt_of_whole_blocks_recomputes_its_last_block():
    node = V1Node(block_size=4)
    node.serve(list(range(8)), 1)
    node.serve(list(range(8)), 1)
    assert node.hits == 4  # (8 - 1) // 4 blocks: vLLM never serves the last prompt token from cache


def test_v1_longest_prefix_stops_at_the_first_miss():
    node = V1Node(block_size=2)
    node.serve([1, 2, 3, 4, 5, 6, 7], 1)
    node.serve([1, 2, 9, 9, 5, 6, 7], 1)  # block 2 would match on its own tokens, but its prefix differs
    assert node.hits == 2


def test_v1_lru_evicts_a_finished_requests_tail_blocks_first():
    node = V1Node(block_size=2, num_gpu_blocks=5)  # 4 usable: block 0 is the null block
    a, b = [1, 2, 3, 4, 5], [7, 8, 9, 10, 11]
    node.serve(a, 1)  # 3 blocks: [1,2] [1..4] cached, [5] partial; freed tail first
    node.serve(b, 1)  # 1 fresh block, then the free queue head: a's partial block, then a's [1..4]
    node.serve(a, 1)
    assert node.hits == 2  # [1,2] survived, [1..4] was evicted


def test_v0_counts_full_prompt_blocks_and_evicts_least_recent_deepest():
    node = V0Node(block_size=2, num_gpu_blocks=4)
    a, b = [1, 2, 3, 4, 5], [7, 8, 9, 10, 11]
    node.serve(a, 1)
    node.serve(b, 1)
    node.serve(a, 1)
    assert (node.block_queries, node.block_hits) == (6, 1)


_VOCAB: dict[str, int] = {}


def words(text: str) -> list[int]:
    """Word-level tokens, as Qwen's tokenizer splits the seed's prompt: the sequence number falls in the
    first block, so no two requests of one run share a block (byte tokens share "Shared context #")."""
    return [_VOCAB.setdefault(w, len(_VOCAB)) for w in text.replace(":", " :").split()]


def test_v0_gauge_reproduces_the_seeds_50_and_90_percent():
    tok = words
    twenty = build(DatasetSpec(strategy="Designate", request_num=20, prefill=P, decode=D))
    rows = expect(twenty, tok, repeat=2)
    assert set(rows) == {P[0], D[0]}  # the other nodes get no request at all
    assert rows[P[0]].v0_hit_rate == 0.5 and rows[D[0]].v0_hit_rate == 0.5
    ten = build(
        DatasetSpec(strategy="Designate", request_num=10, prefill=[P[3]], decode=[D[3]], same_prefix_batch=10)
    )
    rows = expect(ten, tok)
    assert rows[P[3]].v0_hit_rate == pytest.approx(0.9, abs=1e-12)
    n = len(tok(ten[0].prompt))
    assert rows[P[3]].queries == 10 * n
    assert rows[P[3]].hits == 9 * ((n - 1) // 16 * 16)  # V1 counts tokens and caps at n-1: below 90%
    assert rows[P[3]].hit_rate < 0.9


def test_v0_gauge_arithmetic_folds_every_thousand_queries():
    rate = V0HitRate()
    for i in range(2500):
        rate.query(i % 3 == 0)
    hits = sum(1 for i in range(2500) if i % 3 == 0)
    assert rate.num_completed_blocks == 2
    assert rate.value() == pytest.approx(hits / 2500, rel=1e-9)
    assert V0HitRate().value() == 0.0


def test_store_flow_gives_decode_external_hits_and_prefill_max_tokens_1():
    tok = builtin_tokenize
    reqs = build(DatasetSpec(strategy="Designate", request_num=1, prefill=[P[0]], decode=[D[0]]))
    n = len(tok(reqs[0].prompt))
    rows = expect(reqs, tok, connector="store")
    assert rows[D[0]].external_hits == (n - 1) // 16 * 16
    assert rows[D[0]].external_queries == n and rows[P[0]].external_hits == 0
    isolated = expect(reqs, tok, connector="store", shared_hash_seed=False)
    assert isolated[D[0]].external_hits == 0  # no common PYTHONHASHSEED: the decode finds nothing


def test_random_strategy_spreads_the_first_run_so_hits_fall_below_rr():
    tok = builtin_tokenize
    rnd = build(DatasetSpec(strategy="Random", request_num=20, prefill=P, decode=D, seed=5))
    model = ClusterModel(tok)
    model.run(rnd)
    model.run(build(DatasetSpec(strategy="Random", request_num=20, prefill=P, decode=D, seed=6)))
    rows = model.counters()
    total_hits = sum(r.block_hits for r in rows.values())
    total_q = sum(r.block_queries for r in rows.values())
    assert 0 < total_hits / total_q < 0.5


def test_small_pool_that_cannot_hold_a_request_is_an_error():
    with pytest.raises(ValueError, match="does not fit"):
        V1Node(block_size=4, num_gpu_blocks=2).serve(list(range(20)), 1)


def test_tokenizer_agrees_with_the_fake_vllms_for_model_dirs_and_bare_names():
    from simulators.vllm.tokenizer import load_tokenizer as sim_tokenizer

    text = "Shared context #3: This is long context. Question 3: Summarize the context. é"
    for model in (TINY_LLAMA, "Qwen/Qwen2.5-7B"):
        assert load_tokenizer(model)(text) == sim_tokenizer(model).encode(text), model
    assert load_tokenizer(TINY_LLAMA)(text) != builtin_tokenize(text)


def test_cli_prints_json_per_node(tmp_path, capsys):
    path = write(
        tmp_path / "d.jsonl", build(DatasetSpec(strategy="Designate", request_num=20, prefill=P, decode=D))
    )
    assert main(["--datapath", str(path), "--repeat", "2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    want = expect(read(path), builtin_tokenize, repeat=2)[P[0]]  # "m" is a bare name: byte tokens
    assert rows[P[0]] == json.loads(json.dumps(want.to_dict())) and rows[P[0]]["requests"] == 40
    assert set(rows) == {P[0], D[0]}
    assert main(["--datapath", str(tmp_path / "missing.jsonl")]) == 2


def test_cli_takes_real_output_counts_from_send_results(tmp_path, capsys):
    from kvtest.workload.send import RequestResult, write_results

    spec = DatasetSpec(
        strategy="RR", request_num=6, prefill=P[:2], decode=D[:1], context_len=3, requests_per_context=3
    )
    reqs = build(spec)
    path = write(tmp_path / "d.jsonl", reqs)
    outs = [1, 1, 1, 1, 1, 1]  # far below max_tokens=100: fewer blocks held, less eviction on a 30-block pool
    write_results(
        tmp_path / "r.jsonl", [RequestResult(i, True, 200, completion_tokens=o) for i, o in enumerate(outs)]
    )
    args = ["--datapath", str(path), "--block-size", "16", "--num-gpu-blocks", "30", "--json"]
    assert main([*args, "--results", str(tmp_path / "r.jsonl"), "--repeat", "2"]) == 0
    got = json.loads(capsys.readouterr().out)
    model = ClusterModel(builtin_tokenize, block_size=16, num_gpu_blocks=30)
    model.run(reqs, outs)
    model.run(reqs, outs)
    assert got == json.loads(json.dumps({k: v.to_dict() for k, v in model.counters().items()}))
    assert got[D[0]]["hits"] == 1008
    assert main([*args, "--repeat", "2"]) == 0  # assuming max_tokens were generated: more evicted
    assert json.loads(capsys.readouterr().out)[D[0]]["hits"] == 688
    assert main([*args, "--results", str(tmp_path / "r.jsonl"), "--repeat", "1"]) == 0
    capsys.readouterr()
    write_results(tmp_path / "short.jsonl", [RequestResult(0, True, 200)])
    assert main([*args, "--results", str(tmp_path / "short.jsonl")]) == 2


def test_cli_runs_several_dataset_files_in_order(tmp_path, capsys):
    first = write(
        tmp_path / "1.jsonl",
        build(DatasetSpec(strategy="Random", request_num=20, prefill=P, decode=D, seed=1)),
    )
    second = write(
        tmp_path / "2.jsonl",
        build(DatasetSpec(strategy="Random", request_num=20, prefill=P, decode=D, seed=2)),
    )
    assert main(["--datapath", str(first), str(second), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    model = ClusterModel(builtin_tokenize)
    model.run(read(first))
    model.run(read(second))
    assert rows == json.loads(json.dumps({k: v.to_dict() for k, v in model.counters().items()}))
    # new routes on the second pass: every node far below the 50% a repeated route would give
    assert all(r["v0_hit_rate"] < 0.3 for r in rows.values())


def test_v1_output_tokens_fill_blocks_a_later_prompt_can_hit():
    node = V1Node(block_size=4)
    node.serve([1, 2, 3], [4, 5])  # KV holds 1 2 3 4 (the last sampled token is never fed back)
    node.serve([1, 2, 3, 4, 9], 1)
    assert node.hits == 4
    opaque = V1Node(block_size=4)
    opaque.serve([1, 2, 3], 2)  # only a count: the output block is unique content
    opaque.serve([1, 2, 3, 4, 9], 1)
    assert opaque.hits == 0


def test_v0_promoted_output_block_reuses_an_identical_cached_block():
    node = V0Node(block_size=2, num_gpu_blocks=3)
    node.serve([1, 2, 3], [4, 5])  # blocks [1,2] and [1,2,3,4] (promoted when the output filled it)
    node.serve([1, 2, 3, 4, 7], 1)  # both full prompt blocks hit
    block = node.cached[(1, 2, 3, 4)]
    node.serve([1, 2, 3], [4, 5])  # its filled block equals [1,2,3,4]: vLLM keeps the cached copy
    assert node.cached[(1, 2, 3, 4)] == block and len(node.key_of) == 2
    assert (node.block_queries, node.block_hits) == (4, 3)


def test_v1_freed_partial_blocks_are_reused_before_any_cached_block_is_evicted():
    # vLLM >= 0.24 block_pool.py free_blocks prepends hashless blocks; older V1 appended them.
    for unhashed_first, want in ((True, 8), (False, 4)):
        node = V1Node(block_size=4, num_gpu_blocks=12, unhashed_first=unhashed_first)  # 11 usable
        node.serve(list(b"aaabaaaa"), 1)  # 2 cached blocks
        for _ in range(5):
            node.serve(list(b"a"), 1)  # 1 partial block each, freed again
        node.serve(list(b"a" * 17), 1)  # 5 blocks: 4 cached + 1 partial
        node.serve(list(b"aaabaaaaa"), 1)
        assert node.hits == want, unhashed_first


def test_store_flow_external_queries_count_what_the_local_cache_lacked():
    # vLLM 0.32 scheduler.py: connector_prefix_cache_queries = num_tokens - num_new_local_computed_tokens
    tok = builtin_tokenize
    reqs = build(DatasetSpec(strategy="Designate", request_num=1, prefill=[P[0]], decode=[D[0]]))
    n = len(tok(reqs[0].prompt))
    local = (n - 1) // 16 * 16
    twice = expect([*reqs, *reqs], tok, connector="store")
    # second run: the decode's own cache has the prefix, the connector is asked only for the rest
    assert twice[D[0]].external_queries == n + (n - local)
    assert twice[D[0]].external_hits == local
    # the prefill (kv_producer) looks the store up too: a second prefill node finds the first's blocks
    other = dataclasses.replace(reqs[0], user=f"prefill={P[1]};decode={D[0]}")
    both = expect([*reqs, other], tok, connector="store")
    assert both[P[1]].external_hits == local and both[P[0]].external_hits == 0
