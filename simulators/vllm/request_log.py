"""Request logging, off by default, on with vLLM's `--enable-log-requests`: what reached this node.

Two kinds of lines, both as vLLM 0.32 prints them to stdout:

- vLLM's RequestLogger (vllm/entrypoints/serve/utils/request_logger.py, log_inputs), once per engine
  request after validation:
  `Received request cmpl-<id>-0: params: SamplingParams(n=1, ...), lora_request: None.`
  <id> is the client's X-Request-Id header when it sends one (the proxy does), else 16 random hex
  digits (serving's _base_request_id): the id that ties a proxy's request to the lines of both nodes.
- uvicorn's access line, one per answered HTTP request:
  `INFO:     127.0.0.1:54321 - "POST /v1/completions HTTP/1.1" 200 OK (3.1 ms)`
  The fake adds the duration at the end (uvicorn has none): a node that is slow or that hung is what
  a user debugging a proxy looks for, and a parser of uvicorn's lines still reads the fake's.
  The line is written when the answer is complete (uvicorn writes it when the status is sent), so a
  stream's duration is the whole stream.

vLLM prints access lines unless `--disable-uvicorn-access-log`; the fake prints them only with
`--enable-log-requests` (a test process may hold dozens of nodes; their lines would bury everything
else). `--disable-uvicorn-access-log` and `--disable-access-log-for-endpoints /health,/metrics` then
work as in vLLM; `--max-log-len` is accepted (the fake logs no prompts, which vLLM logs only at DEBUG).
"""

from __future__ import annotations

import logging
import sys
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

ACCESS_LOGGER = "uvicorn.access"
REQUEST_LOGGER = "vllm.entrypoints.serve.utils.request_logger"


class UvicornAccessLogger(AbstractAccessLogger):
    """aiohttp's access-log hook writing uvicorn's line (uvicorn/protocols/http: client_addr - "request
    line" status phrase)."""

    excluded: frozenset[str] = frozenset()

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if request.path in self.excluded:
            return
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client = f"{peer[0]}:{peer[1]}" if peer else "-"
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = ""
        version = f"{request.version.major}.{request.version.minor}"
        self.logger.info(
            '%s - "%s %s HTTP/%s" %d %s (%.1f ms)',
            client,
            request.method,
            request.path_qs,
            version,
            response.status,
            phrase,
            time * 1000,
        )


def access_logger_class(excluded_paths: str | None) -> type[UvicornAccessLogger]:
    paths = frozenset(p.strip() for p in (excluded_paths or "").split(",") if p.strip())
    return type("UvicornAccessLogger", (UvicornAccessLogger,), {"excluded": paths})


def sampling_params_repr(p: dict[str, Any]) -> str:
    """vLLM 0.32's SamplingParams.__repr__, field for field; what the fake does not read is vLLM's
    default for it. kv_transfer_params travel in extra_args, as vLLM puts them there."""
    kv = p.get("kv_transfer_params")
    fields = {
        "n": p.get("n", 1),
        "presence_penalty": p.get("presence_penalty") or 0.0,
        "frequency_penalty": p.get("frequency_penalty") or 0.0,
        "repetition_penalty": p.get("repetition_penalty") or 1.0,
        "temperature": 1.0 if p.get("temperature") is None else p["temperature"],
        "watermarking": None,
        "top_p": 1.0 if p.get("top_p") is None else p["top_p"],
        "top_k": p.get("top_k") or 0,
        "min_p": p.get("min_p") or 0.0,
        "seed": p.get("seed"),
        "stop": [],
        "stop_token_ids": [],
        "bad_words": [],
        "thinking_token_budget": None,
        "include_stop_str_in_output": False,
        "ignore_eos": False,
        "max_tokens": p.get("max_tokens"),
        "min_tokens": 0,
        "logprobs": None,
        "prompt_logprobs": p.get("prompt_logprobs"),
        "skip_special_tokens": True,
        "spaces_between_special_tokens": True,
        "structured_outputs": None,
        "extra_args": {"kv_transfer_params": kv} if kv is not None else None,
    }
    return "SamplingParams(" + ", ".join(f"{k}={v}" for k, v in fields.items()) + ")"


def log_received(request_id: str, params: dict[str, Any]) -> None:
    logging.getLogger(REQUEST_LOGGER).info(
        "Received request %s: params: %s, lora_request: None.", request_id, sampling_params_repr(params)
    )


def enable(stream: Any = None) -> None:
    """Let the two loggers through at INFO; with `stream`, print them there as vLLM formats them
    (a `python -m simulators.vllm serve` process: stdout, like vLLM)."""
    access = logging.getLogger(ACCESS_LOGGER)
    requests = logging.getLogger(REQUEST_LOGGER)
    for logger in (access, requests):
        logger.setLevel(logging.INFO)
    if stream is None:
        return
    h = logging.StreamHandler(stream)
    h.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
    access.addHandler(h)
    access.propagate = False
    h = logging.StreamHandler(stream)
    h.setFormatter(
        logging.Formatter(
            "(APIServer pid=%(process)d) %(levelname)s %(asctime)s [request_logger.py] %(message)s",
            "%m-%d %H:%M:%S",
        )
    )
    requests.addHandler(h)
    requests.propagate = False


def enable_on_stdout() -> None:
    enable(sys.stdout)
