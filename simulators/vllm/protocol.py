"""Request validation and response bodies in vLLM's shapes (vllm/entrypoints/openai/protocol.py).

Hand-written checks instead of pydantic models: they cost microseconds per request and give the same
statuses as vLLM: 400 BadRequestError for malformed JSON, wrong types and values the sampling params
refuse; 404 NotFoundError (param "model") for an unknown model; errors as
{"error": {"message", "type", "param", "code"}} with code = the HTTP status (vLLM's ErrorResponse).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from simulators.vllm.failures import error_type_for


class ApiError(Exception):
    def __init__(
        self, status: int, message: str, param: str | None = None, err_type: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.err_type = err_type or error_type_for(status)

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.param, self.err_type)


def error_body(
    status: int, message: str, param: str | None = None, err_type: str | None = None
) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": err_type or error_type_for(status),
            "param": param,
            "code": status,
        }
    }


def bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param)


def _validation(field: str, expected: str, value: Any) -> ApiError:
    # pydantic's wording, as vLLM's RequestValidationError handler passes it through
    return bad(
        f"1 validation error for request\n{field}\n  Input should be {expected} [input_value={value!r}]",
        field,
    )


def opt_int(body: dict[str, Any], key: str, default: int | None) -> int | None:
    v = body.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool):
        raise _validation(key, "a valid integer", v)
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            pass
    raise _validation(key, "a valid integer", v)


def opt_float(body: dict[str, Any], key: str) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise _validation(key, "a valid number", v)
    try:
        return float(v)
    except ValueError:
        raise _validation(key, "a valid number", v) from None


def opt_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        return v.lower() in ("true", "1", "yes", "on")
    raise _validation(key, "a valid boolean", v)


def opt_dict(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    v = body.get(key)
    if v is None or isinstance(v, dict):
        return v
    raise _validation(key, "a valid dictionary", v)


def opt_str(body: dict[str, Any], key: str) -> str | None:
    v = body.get(key)
    if v is None or isinstance(v, str):
        return v
    raise _validation(key, "a valid string", v)


@dataclass(slots=True)
class Sampling:
    """The parts of a request's sampling params that the fake acts on."""

    max_tokens: int | None
    stream: bool
    include_usage: bool
    continuous_usage: bool
    seed: int | None
    kv_transfer_params: dict[str, Any] | None
    cache_salt: str | None
    skip_reading_prefix_cache: bool


def parse_sampling(body: dict[str, Any], default_max_tokens: int | None, chat: bool) -> Sampling:
    max_tokens = opt_int(body, "max_tokens", default_max_tokens)
    if chat:
        mct = opt_int(body, "max_completion_tokens", None)
        if mct is not None:
            max_tokens = mct
    stream = opt_bool(body, "stream", False)
    so = opt_dict(body, "stream_options")
    if so is not None and not stream:
        raise bad("Stream options can only be defined when `stream=True`.", "stream_options")
    n = opt_int(body, "n", 1)
    if n is not None and n < 1:
        raise bad(f"n must be at least 1, got {n}.", "n")
    if n is not None and n > 1:
        raise ApiError(400, "The fake vLLM server only supports n=1.", "n")
    for key in ("temperature", "top_p", "presence_penalty", "frequency_penalty", "repetition_penalty"):
        opt_float(body, key)
    temperature = opt_float(body, "temperature")
    if temperature is not None and temperature < 0:
        raise bad(f"temperature must be non-negative, got {temperature}.", "temperature")
    top_p = opt_float(body, "top_p")
    if top_p is not None and not 0 < top_p <= 1:
        raise bad(f"top_p must be in (0, 1], got {top_p}.", "top_p")
    if max_tokens is not None and max_tokens < 1:
        raise bad(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens")
    prompt_logprobs = opt_int(body, "prompt_logprobs", None)
    include_usage = False
    continuous = False
    if so is not None:
        include_usage = bool(so.get("include_usage", True))
        continuous = bool(so.get("continuous_usage_stats", False))
    return Sampling(
        max_tokens=max_tokens,
        stream=stream,
        include_usage=include_usage,
        continuous_usage=continuous,
        seed=opt_int(body, "seed", None),
        kv_transfer_params=opt_dict(body, "kv_transfer_params"),
        cache_salt=opt_str(body, "cache_salt"),
        skip_reading_prefix_cache=prompt_logprobs is not None,
    )


def check_length(num_prompt: int, max_tokens: int | None, max_model_len: int) -> int:
    """vLLM's prompt-length checks (serving_engine._validate_input); returns the effective max_tokens."""
    if num_prompt >= max_model_len:
        raise bad(
            f"This model's maximum context length is {max_model_len} tokens. However, your request has "
            f"{num_prompt} input tokens. Please reduce the length of the input messages."
        )
    if max_tokens is None:
        return max_model_len - num_prompt
    if num_prompt + max_tokens > max_model_len:
        raise bad(
            f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This model's maximum "
            f"context length is {max_model_len} tokens and your request has {num_prompt} input tokens "
            f"({max_tokens} > {max_model_len} - {num_prompt}).",
            "max_tokens",
        )
    return max_tokens


def parse_prompts(body: dict[str, Any]) -> list[str | list[int]]:
    """Completions' `prompt`: a string, a list of token ids, a list of strings, or a list of id lists."""
    if "prompt" not in body:
        raise bad("1 validation error for CompletionRequest\nprompt\n  Field required", "prompt")
    p = body["prompt"]
    if isinstance(p, str):
        return [p]
    if isinstance(p, list) and p:
        if all(isinstance(t, int) and not isinstance(t, bool) for t in p):
            return [list(p)]
        if all(isinstance(s, str) for s in p):
            return list(p)
        if all(
            isinstance(x, list) and x and all(isinstance(t, int) and not isinstance(t, bool) for t in x)
            for x in p
        ):
            return [list(x) for x in p]
    if isinstance(p, list) and not p:
        raise bad("Prompt cannot be empty", "prompt")
    raise _validation("prompt", "a valid string or a list of token ids", p)


def parse_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = body.get("messages")
    if msgs is None:
        raise bad("1 validation error for ChatCompletionRequest\nmessages\n  Field required", "messages")
    if not isinstance(msgs, list):
        raise _validation("messages", "a valid list", msgs)
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise _validation(f"messages.{i}", "a message object with a role", m)
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for part in content:
                if (
                    not isinstance(part, dict)
                    or part.get("type") != "text"
                    or not isinstance(part.get("text"), str)
                ):
                    raise bad("The fake vLLM server only takes text content parts.", f"messages.{i}.content")
                parts.append(part["text"])
            content = "\n".join(parts)
        elif content is not None and not isinstance(content, str):
            raise _validation(f"messages.{i}.content", "a valid string", content)
        out.append({**m, "content": content if content is not None else ""})
    return out


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now_s() -> int:
    return int(time.time())


def usage(prompt: int, completion: int, cached: int | None, details: bool) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": cached} if details else None,
    }


def completion_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {
        "index": index,
        "text": text,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
        "token_ids": None,
        "prompt_logprobs": None,
        "prompt_token_ids": None,
    }


def completion_chunk_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {
        "index": index,
        "text": text,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
    }


def chat_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {
        "index": index,
        "message": {
            "role": "assistant",
            "content": text,
            "refusal": None,
            "annotations": None,
            "audio": None,
            "function_call": None,
            "tool_calls": [],
            "reasoning_content": None,
        },
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
    }


def chat_chunk_choice(index: int, delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    return {
        "index": index,
        "delta": delta,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
    }
