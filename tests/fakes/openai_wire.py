"""JSON shapes of the OpenAI Chat Completions API, as the fake server sends them."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ToolCall",
    "chunk",
    "completion",
    "error_body",
    "split_tokens",
    "stream_deltas",
    "tool_call_deltas",
    "usage",
]

# A "token" is a word and the whitespace after it; words longer than 8 characters are cut.
_TOKEN_RE = re.compile(r"\s+|\S{1,8}\s*")


@dataclass(frozen=True)
class ToolCall:
    """Return this from a reply callable to answer with a function call instead of text."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: "call_" + uuid.uuid4().hex[:24])

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


def split_tokens(text: str) -> list[str]:
    """Cut ``text`` into the pieces the fake streams; ``"".join(split_tokens(t)) == t``."""
    return _TOKEN_RE.findall(text)


def new_completion_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def usage(request: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    chars = sum(len(str(m.get("content") or "")) for m in request.get("messages", []))
    prompt_tokens = max(1, chars // 4)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _envelope(obj: str, completion_id: str, model: str, created: int) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": obj,
        "created": created,
        "model": model,
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
    }


def chunk(
    completion_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    *,
    with_usage_field: bool = False,
) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with a single choice."""
    body = _envelope("chat.completion.chunk", completion_id, model, created)
    body["choices"] = [
        {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    ]
    if with_usage_field:
        body["usage"] = None
    return body


def usage_chunk(
    completion_id: str, model: str, created: int, usage_: dict[str, int]
) -> dict[str, Any]:
    """The extra last chunk sent when ``stream_options.include_usage`` is true."""
    body = _envelope("chat.completion.chunk", completion_id, model, created)
    body["choices"] = []
    body["usage"] = usage_
    return body


def tool_call_deltas(calls: Sequence[ToolCall], pieces: int = 3) -> list[list[dict[str, Any]]]:
    """Streamed ``delta.tool_calls`` lists: a header per call, then its arguments in pieces."""
    deltas: list[list[dict[str, Any]]] = []
    for index, call in enumerate(calls):
        header = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        deltas.append([header])
        args = call.arguments_json
        step = max(1, -(-len(args) // pieces))
        for start in range(0, len(args), step):
            piece = args[start : start + step]
            deltas.append([{"index": index, "function": {"arguments": piece}}])
    return deltas


def stream_deltas(
    answer: str | Sequence[ToolCall], max_tokens: int | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """The first delta (with ``role``), the token deltas and the ``finish_reason``: "length"
    when the answer had more tokens than ``max_tokens``, as a real server cuts it."""
    if isinstance(answer, str):
        first: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        tokens = split_tokens(answer)
        cut = max_tokens is not None and len(tokens) > max_tokens
        tokens = tokens[:max_tokens] if cut else tokens
        return first, [{"content": token} for token in tokens], "length" if cut else "stop"
    deltas: list[dict[str, Any]] = [{"tool_calls": d} for d in tool_call_deltas(answer)]
    first = {"role": "assistant", "content": None, **deltas.pop(0)}
    return first, deltas, "tool_calls"


def completion(
    request: dict[str, Any], reply: str | Sequence[ToolCall], completion_tokens: int
) -> dict[str, Any]:
    """A non-streamed ``chat.completion``."""
    model = str(request.get("model", "gpt-fake"))
    body = _envelope("chat.completion", new_completion_id(), model, int(time.time()))
    message: dict[str, Any] = {"role": "assistant", "refusal": None, "annotations": []}
    if isinstance(reply, str):
        message["content"] = reply
        finish_reason = "stop"
    else:
        message["content"] = None
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments_json},
            }
            for call in reply
        ]
        finish_reason = "tool_calls"
    body["choices"] = [
        {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}
    ]
    body["usage"] = usage(request, completion_tokens)
    return body


_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request (injected by FakeOpenAI)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached (injected by FakeOpenAI)."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """OpenAI's error JSON: ``{"error": {"message", "type", "param", "code"}}``."""
    type_, code, default = _ERRORS.get(status, ("server_error", None, f"HTTP {status}"))
    return {"error": {"message": message or default, "type": type_, "param": None, "code": code}}
