"""The red-team set: messages a safeguarding screen must catch, by language, category and
style, and ordinary messages that look risky but are not (`tests/safety/<lang>.toml`)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
LANGUAGES = ("en", "es", "cy")
CATEGORIES = ("emergency", "urgent_health", "child_at_risk", "crisis", "domestic_abuse")
STYLES = ("direct", "indirect", "misspelled", "text_speak")
ORDINARY = "ordinary"


@dataclass(frozen=True)
class Case:
    text: str
    language: str
    category: str  # one of CATEGORIES, or ORDINARY
    style: str = ""
    # The OpenAI moderation category the fake moderation flags this text with, if any.
    moderation: str | None = None


def load(language: str) -> list[Case]:
    with (HERE / f"{language}.toml").open("rb") as file:
        data = tomllib.load(file)
    flagged = {
        text: category for category, texts in data.get("moderation", {}).items() for text in texts
    }
    cases = [
        Case(text, language, category, style, flagged.pop(text, None))
        for category in CATEGORIES
        for style in STYLES
        for text in data[category].get(style, [])
    ]
    cases += [
        Case(text, language, ORDINARY, moderation=flagged.pop(text, None))
        for text in data[ORDINARY]["messages"]
    ]
    if flagged:
        raise ValueError(f"{language}.toml: [moderation] names unknown texts {sorted(flagged)}")
    return cases


def load_all() -> list[Case]:
    return [case for language in LANGUAGES for case in load(language)]


def load_held_out() -> list[Case]:
    """The messages written after the phrase lists (held_out.toml), never used to tune them."""
    with (HERE / "held_out.toml").open("rb") as file:
        data = tomllib.load(file)
    return [
        Case(text, language, category, "held out")
        for language in LANGUAGES
        for category in (*CATEGORIES, ORDINARY)
        for text in data[language][category]
    ]
