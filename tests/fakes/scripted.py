"""`scripted(text)`: a FakeOpenAI reply that resumes an interrupted answer, not repeats it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["message_text", "scripted"]


def message_text(message: dict[str, Any]) -> str:
    """The text of a chat message whose content is a string or a list of ``text`` parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _normalise(text: str) -> tuple[str, list[int]]:
    """Collapse whitespace runs to one space and strip; also return, for each character of the
    result, its index in ``text``."""
    out: list[str] = []
    positions: list[int] = []
    pending_space = -1
    for index, char in enumerate(text):
        if char.isspace():
            if out and pending_space < 0:
                pending_space = index
            continue
        if pending_space >= 0:
            out.append(" ")
            positions.append(pending_space)
            pending_space = -1
        out.append(char)
        positions.append(index)
    return "".join(out), positions


def remainder_after(text: str, prefix: str) -> str | None:
    """``text`` after ``prefix`` when ``prefix`` is a whitespace-normalised prefix of it."""
    norm_text, positions = _normalise(text)
    norm_prefix, _ = _normalise(prefix)
    if not norm_text.startswith(norm_prefix):
        return None
    if not norm_prefix:
        return text
    return text[positions[len(norm_prefix) - 1] + 1 :]


def scripted(text: str) -> Callable[[dict[str, Any]], str]:
    """A reply callable answering ``text`` — or only the rest of it when resuming.

    If the request holds an assistant message whose (whitespace-normalised) content is a prefix
    of ``text`` and a user message comes after it (the app's "continue where you stopped"
    request after a crash), the reply is the remainder of ``text`` after that prefix, in its
    original spelling. The latest such assistant message wins. An assistant message that is the
    whole of ``text`` therefore yields ``""``: the answer was already delivered.
    """

    def reply(request: dict[str, Any]) -> str:
        messages = [m for m in request.get("messages", []) if isinstance(m, dict)]
        later_user = False
        for message in reversed(messages):
            role = message.get("role")
            if role == "user":
                later_user = True
            elif role == "assistant" and later_user:
                rest = remainder_after(text, message_text(message))
                if rest is not None:
                    return rest
        return text

    return reply
