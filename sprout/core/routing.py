"""What a message asks for, decided from its first word, forgivingly."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import regex

# A command word, then any mix of spaces and light punctuation ("Explain: ", "activities - ").
_COMMAND = regex.compile(
    r"^[\s\p{P}&&[^?¿]]*(?P<word>\p{L}+)(?:[\s\p{P}&&[^?¿'\"“‘(]]+|$)(?P<rest>.*)$",
    regex.DOTALL | regex.VERSION1,
)


class Intent(enum.Enum):
    HELP = "help"
    EXPLAIN = "explain"
    ACTIVITIES = "activities"


@dataclass(frozen=True)
class Route:
    intent: Intent
    argument: str = ""


_WORDS = {
    "explain": Intent.EXPLAIN,
    "activity": Intent.ACTIVITIES,
    "activities": Intent.ACTIVITIES,
    "activites": Intent.ACTIVITIES,
    "activitys": Intent.ACTIVITIES,
}


def route(text: str) -> Route:
    """Place a message. The argument keeps the user's own casing and wording."""
    match = _COMMAND.match(text)
    if match is None:
        return Route(Intent.HELP)
    word = match["word"].casefold()
    if word in _WORDS:
        return Route(_WORDS[word], match["rest"].strip())
    # Greetings and anything unplaced get the help text: it says what the bot can do.
    return Route(Intent.HELP)
