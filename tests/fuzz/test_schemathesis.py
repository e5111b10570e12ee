"""schemathesis, aimed at the fake vLLM through its /openapi.json (as it would be at a vLLM node): a
bounded, derandomized run over every operation, schema-valid and schema-breaking bodies, and no 5xx."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from simulators.vllm import FakeVLLMServer, SimConfig

from .surfaces import BODY_TIMEOUT_S

EXAMPLES = 12  # per operation and mode: a bounded run (schemathesis's generation is the slow part)


@pytest.fixture(scope="module")
def fake_vllm_url() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    cfg = SimConfig(
        model="tiny",
        port=0,
        max_model_len=48,
        sim_body_timeout_s=BODY_TIMEOUT_S,
        sim_env={"VLLM_MAX_N_SEQUENCES": "8"},
    )
    node = FakeVLLMServer(cfg)
    asyncio.run_coroutine_threadsafe(node.start(), loop).result(30)
    try:
        yield node.url
    finally:
        asyncio.run_coroutine_threadsafe(node.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@pytest.fixture(scope="module")
def fake_vllm_schema(fake_vllm_url: str) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{fake_vllm_url}/openapi.json")
    schema.config.update(base_url=fake_vllm_url)
    return schema


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_server_error(
    fake_vllm_schema: schemathesis.BaseSchema, mode: GenerationMode
) -> None:
    """Every operation of the document, schema-valid (positive) and schema-breaking (negative) cases."""
    operations = [result.ok() for result in fake_vllm_schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/completions", "/v1/chat/completions", "/tokenize"}
    statuses: Counter[int] = Counter()
    for op in operations:
        if mode is GenerationMode.NEGATIVE and op.method.lower() != "post":
            continue  # a GET without parameters cannot be called wrongly by the schema

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            response = case.call(timeout=30)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=[not_a_server_error])

        run()
    histogram = dict(sorted(statuses.items()))
    print(f"schemathesis {mode.value}: {sum(statuses.values())} requests, statuses {histogram}")
    assert not [s for s in statuses if s >= 500]
