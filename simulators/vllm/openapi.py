"""GET /openapi.json: the OpenAPI 3.1 document FastAPI generates for vLLM, cut to the fake's routes.

vLLM serves FastAPI's document (disabled only by --disable-fastapi-docs), so schema-driven fuzzers
(schemathesis) can aim at a vLLM node. The fake's has vLLM 0.32's paths, operation ids (FastAPI's
`<function>_<path>_<method>`), schema names (CompletionRequest, ChatCompletionRequest,
TokenizeCompletionRequest, TokenizeChatRequest, DetokenizeRequest, ErrorResponse, ErrorInfo) and
FastAPI's HTTPValidationError for 422. Request schemas list the fields the fake reads, with vLLM's
types and defaults; vLLM's models have many more (the fake accepts and ignores them, as vLLM
ignores unknown ones). Like FastAPI's, the document declares 422 for bad bodies where vLLM (and the
fake) actually answer 400.
"""

from __future__ import annotations

from typing import Any

_INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}


def _opt(schema: dict[str, Any], default: Any = None, title: str = "") -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}], "default": default, "title": title}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_INT = {"type": "integer"}
_NUM = {"type": "number"}
_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_OBJ = {"type": "object", "additionalProperties": True}

_SAMPLING = {
    "model": _opt(_STR, None, "Model"),
    "n": {"type": "integer", "default": 1, "title": "N"},
    "stream": _opt(_BOOL, False, "Stream"),
    "stream_options": _opt(_ref("StreamOptions")),
    "temperature": _opt(_NUM, None, "Temperature"),
    "top_p": _opt(_NUM, None, "Top P"),
    "top_k": _opt(_INT, None, "Top K"),
    "min_p": _opt(_NUM, None, "Min P"),
    "presence_penalty": _opt(_NUM, None, "Presence Penalty"),
    "frequency_penalty": _opt(_NUM, None, "Frequency Penalty"),
    "repetition_penalty": _opt(_NUM, None, "Repetition Penalty"),
    "seed": _opt({**_INT, **_INT64}, None, "Seed"),
    "user": _opt(_STR, None, "User"),
    "kv_transfer_params": _opt(_OBJ, None, "Kv Transfer Params"),
    "cache_salt": _opt(_STR, None, "Cache Salt"),
    "prompt_logprobs": _opt(_INT, None, "Prompt Logprobs"),
    "return_token_ids": _opt(_BOOL, None, "Return Token Ids"),
}
_MESSAGE = {
    "type": "object",
    "properties": {"role": _STR, "content": _opt({"anyOf": [_STR, {"type": "array", "items": _OBJ}]})},
    "required": ["role"],
}
_SCHEMAS: dict[str, Any] = {
    "StreamOptions": {
        "type": "object",
        "title": "StreamOptions",
        "properties": {
            "include_usage": _opt(_BOOL, True, "Include Usage"),
            "continuous_usage_stats": _opt(_BOOL, False, "Continuous Usage Stats"),
        },
    },
    "CompletionRequest": {
        "type": "object",
        "title": "CompletionRequest",
        "properties": {
            **_SAMPLING,
            "prompt": _opt(
                {
                    "anyOf": [
                        {"type": "array", "items": _INT},
                        {"type": "array", "items": {"type": "array", "items": _INT}},
                        _STR,
                        {"type": "array", "items": _STR},
                    ]
                },
                None,
                "Prompt",
            ),
            "max_tokens": _opt(_INT, 16, "Max Tokens"),
            "add_special_tokens": {"type": "boolean", "default": True, "title": "Add Special Tokens"},
        },
    },
    "ChatCompletionRequest": {
        "type": "object",
        "title": "ChatCompletionRequest",
        "properties": {
            **_SAMPLING,
            "messages": {"type": "array", "items": _MESSAGE, "title": "Messages"},
            "max_tokens": _opt(_INT, None, "Max Tokens"),
            "max_completion_tokens": _opt(_INT, None, "Max Completion Tokens"),
            "add_generation_prompt": {"type": "boolean", "default": True, "title": "Add Generation Prompt"},
            "add_special_tokens": {"type": "boolean", "default": False, "title": "Add Special Tokens"},
            "chat_template_kwargs": _opt(_OBJ, None, "Chat Template Kwargs"),
        },
        "required": ["messages"],
    },
    "TokenizeCompletionRequest": {
        "type": "object",
        "title": "TokenizeCompletionRequest",
        "properties": {
            "model": _opt(_STR, None, "Model"),
            "prompt": {"type": "string", "title": "Prompt"},
            "add_special_tokens": {"type": "boolean", "default": True, "title": "Add Special Tokens"},
            "return_token_strs": _opt(_BOOL, False, "Return Token Strs"),
        },
        "required": ["prompt"],
    },
    "TokenizeChatRequest": {
        "type": "object",
        "title": "TokenizeChatRequest",
        "properties": {
            "model": _opt(_STR, None, "Model"),
            "messages": {"type": "array", "items": _MESSAGE, "title": "Messages"},
            "add_generation_prompt": {"type": "boolean", "default": True, "title": "Add Generation Prompt"},
            "add_special_tokens": {"type": "boolean", "default": False, "title": "Add Special Tokens"},
            "return_token_strs": _opt(_BOOL, False, "Return Token Strs"),
        },
        "required": ["messages"],
    },
    "DetokenizeRequest": {
        "type": "object",
        "title": "DetokenizeRequest",
        "properties": {
            "model": _opt(_STR, None, "Model"),
            "tokens": {"type": "array", "items": {"type": "integer", "minimum": 0}, "title": "Tokens"},
        },
        "required": ["tokens"],
    },
    "ErrorInfo": {
        "type": "object",
        "title": "ErrorInfo",
        "properties": {
            "message": {"type": "string", "title": "Message"},
            "type": {"type": "string", "title": "Type"},
            "param": _opt(_STR, None, "Param"),
            "code": {"type": "integer", "title": "Code"},
        },
        "required": ["message", "type", "code"],
    },
    "ErrorResponse": {
        "type": "object",
        "title": "ErrorResponse",
        "properties": {"error": _ref("ErrorInfo")},
        "required": ["error"],
    },
    "ValidationError": {
        "type": "object",
        "title": "ValidationError",
        "properties": {
            "loc": {"type": "array", "items": {"anyOf": [_STR, _INT]}, "title": "Location"},
            "msg": {"type": "string", "title": "Message"},
            "type": {"type": "string", "title": "Error Type"},
        },
        "required": ["loc", "msg", "type"],
    },
    "HTTPValidationError": {
        "type": "object",
        "title": "HTTPValidationError",
        "properties": {"detail": {"type": "array", "items": _ref("ValidationError"), "title": "Detail"}},
    },
}

_JSON_ANY: dict[str, Any] = {"application/json": {"schema": {}}}
_ERR = {"application/json": {"schema": _ref("ErrorResponse")}}
_422 = {
    "description": "Validation Error",
    "content": {"application/json": {"schema": _ref("HTTPValidationError")}},
}


def _get(op_id: str, summary: str) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "operationId": op_id,
            "responses": {"200": {"description": "Successful Response", "content": _JSON_ANY}},
        }
    }


def _post(op_id: str, summary: str, body: dict[str, Any], stream: bool = False) -> dict[str, Any]:
    ok: dict[str, Any] = {"application/json": {"schema": {}}}
    if stream:
        ok["text/event-stream"] = {}
    return {
        "post": {
            "summary": summary,
            "operationId": op_id,
            "requestBody": {"content": {"application/json": {"schema": body}}, "required": True},
            "responses": {
                "200": {"description": "Successful Response", "content": ok},
                "400": {"description": "Bad Request", "content": _ERR},
                "404": {"description": "Not Found", "content": _ERR},
                "422": _422,
                "500": {"description": "Internal Server Error", "content": _ERR},
            },
        }
    }


def openapi_document() -> dict[str, Any]:
    tokenize = {"anyOf": [_ref("TokenizeCompletionRequest"), _ref("TokenizeChatRequest")], "title": "Request"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "FastAPI", "version": "0.1.0"},  # vLLM builds FastAPI() without a title
        "paths": {
            "/health": _get("health_health_get", "Health"),
            "/ping": _get("ping_ping_get", "Ping"),
            "/version": _get("show_version_version_get", "Show Version"),
            "/v1/models": _get("show_available_models_v1_models_get", "Show Available Models"),
            "/tokenize": _post("tokenize_tokenize_post", "Tokenize", tokenize),
            "/detokenize": _post("detokenize_detokenize_post", "Detokenize", _ref("DetokenizeRequest")),
            "/v1/chat/completions": _post(
                "create_chat_completion_v1_chat_completions_post",
                "Create Chat Completion",
                _ref("ChatCompletionRequest"),
                stream=True,
            ),
            "/v1/completions": _post(
                "create_completion_v1_completions_post",
                "Create Completion",
                _ref("CompletionRequest"),
                stream=True,
            ),
        },
        "components": {"schemas": _SCHEMAS},
    }
