"""Server-sent events as vLLM writes them: `data: <json>\\n\\n` per event, `data: [DONE]\\n\\n` last.

On an error inside a stream vLLM sends one `data: {"error": {...}}` event and then `data: [DONE]`
(vllm/entrypoints/openai/serving_completion.py, completion_stream_generator's except branch); the proxy
ends a broken decode stream the same way, so a client parser sees valid JSON and a normal end.
"""

from __future__ import annotations

import json

from kvtest.proxy.errors import error_body

CONTENT_TYPE = "text/event-stream; charset=utf-8"
DONE = b"data: [DONE]\n\n"
_EVENT_END = b"\n\n"


def error_event(status: int, message: str) -> bytes:
    return b"data: " + json.dumps(error_body(status, message)).encode() + _EVENT_END


class EventBuffer:
    """Cuts a byte stream at event boundaries so only whole events are forwarded.

    A backend that dies mid-event leaves a partial event in `pending`; the proxy drops it and writes an
    error event instead, so the client never sees a truncated JSON line.
    """

    __slots__ = ("done", "pending")

    def __init__(self) -> None:
        self.pending = b""
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        data = self.pending + chunk if self.pending else chunk
        cut = data.rfind(_EVENT_END)
        if cut < 0:
            self.pending = data
            return b""
        whole = data[: cut + 2]
        self.pending = data[cut + 2 :]
        if not self.done and b"data: [DONE]" in whole:
            self.done = True
        return whole
