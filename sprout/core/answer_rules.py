"""The rules an answer must keep before it reaches a parent: no medication doses, no
diagnoses, no links outside the allow-list. They read the model's own words (its Markdown),
offline and in microseconds, so every backend gets them, local models included.

The patterns live in `prompts/answer_rules.toml`, editable without touching code. A rule is a
regular expression (case does not count); a rule with `near` holds only when one of that
word list's words is also within `reach` characters ("5 ml" is a dose beside "Calpol", not
beside "water"). Patterns may name a word list as `{name}`. A malformed file stops start-up.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import urlsplit

DEFAULT_REACH = 80
_WORDS_REF = re.compile(r"\{([a-z_]+)\}")
_EMPHASIS = re.compile(r"[*_~`]+")
_APOSTROPHES = re.compile(r"[’‘´`]")
# A link as a model writes it: with a scheme, starting www., or a bare domain with a path
# or a well-known ending ("nhs.uk/conditions", "example.com").
_LINK = re.compile(
    r"(?:https?://|www\.)[^\s<>()\[\]\"'`]+"
    r"|\b(?:[a-z0-9-]+\.)+(?:com|org|net|uk|io|co|info|app|ly|me|ai|es|wales|cymru|edu|gov)"
    r"\b(?:/[^\s<>()\[\]\"'`]*)?",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?*_~'\""


class Reason(enum.StrEnum):
    """Why a chunk may not leave; each has its own safe response."""

    DOSE = "dose"
    DIAGNOSIS = "diagnosis"
    LINK = "link"
    MODERATION = "moderation"  # the moderation endpoint flagged the answer's text


RULE_REASONS = frozenset({Reason.DOSE, Reason.DIAGNOSIS})
OFF_LIST = "link_not_allowed"  # the rule name a link outside the allow-list is recorded as


class RulesError(ValueError):
    """The rules file cannot be read as rules."""


@dataclass(frozen=True)
class Finding:
    """What stops a chunk: the reason and the rule (or moderation categories) that found it."""

    reason: Reason
    rule: str


@dataclass(frozen=True)
class Rule:
    name: str
    reason: Reason
    patterns: tuple[re.Pattern[str], ...]
    near: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Allowed:
    """A site links may point to: a host (its subdomains too) and, optionally, a path prefix."""

    host: str
    path: str = ""

    @classmethod
    def parse(cls, entry: str) -> Allowed:
        host, _, path = entry.strip().lower().removeprefix("www.").partition("/")
        if not host or "." not in host:
            raise RulesError(f"allow-list entry {entry!r} is not a site")
        return cls(host, "/" + path if path else "")

    def admits(self, host: str, path: str) -> bool:
        on_site = host == self.host or host.endswith("." + self.host)
        return on_site and path.lower().startswith(self.path)


class AnswerRules:
    def __init__(self, rules: Iterable[Rule], allowed: Iterable[Allowed], reach: int) -> None:
        self.rules = tuple(rules)
        self.allowed = tuple(allowed)
        self._reach = reach

    def check(self, text: str, context: str = "") -> Finding | None:
        """The first rule `text` breaks. `context` is what came just before it, already
        checked (the end of the chunk before, where a dose's medicine may be): only findings
        that reach into `text` count."""
        before = _plain(context)
        joined = (before + " " if before else "") + _plain(text)
        start = len(joined) - len(_plain(text))
        for rule in self.rules:
            if self._breaks(rule, joined, start):
                return Finding(rule.reason, rule.name)
        for link in _LINK.finditer(text):
            if not self.admits(link.group()):
                return Finding(Reason.LINK, OFF_LIST)
        return None

    def admits(self, link: str) -> bool:
        url = link.rstrip(_TRAILING)
        parts = urlsplit(url if "://" in url else "https://" + url)
        host = (parts.hostname or "").removeprefix("www.")
        return any(allowed.admits(host, parts.path or "/") for allowed in self.allowed)

    def _breaks(self, rule: Rule, text: str, start: int) -> bool:
        for pattern in rule.patterns:
            for match in pattern.finditer(text):
                if rule.near is None:
                    if match.end() > start:
                        return True
                    continue
                window = max(0, match.start() - self._reach), match.end() + self._reach
                for word in rule.near.finditer(text, *window):
                    if max(match.end(), word.end()) > start:
                        return True
        return False


def _plain(text: str) -> str:
    """What the patterns read: no emphasis marks, one kind of apostrophe, single spaces."""
    return " ".join(_APOSTROPHES.sub("'", _EMPHASIS.sub("", text)).split())


def parse_rules(data: Mapping[str, Any], extra_allowed: Iterable[str] = ()) -> AnswerRules:
    """The rules from the file's data; `extra_allowed`: the region's own sites."""
    words = _word_lists(data.get("words", {}))
    reach = data.get("reach", DEFAULT_REACH)
    if not isinstance(reach, int) or isinstance(reach, bool) or reach < 0:
        raise RulesError("reach must be a whole number of characters")
    entries = data.get("rules")
    if not isinstance(entries, list) or not entries:
        raise RulesError("[[rules]] missing")
    rules = [_rule(entry, words) for entry in entries]
    names = [rule.name for rule in rules]
    if len(set(names)) != len(names):
        raise RulesError(f"rule names must be unique: {sorted(names)}")
    allowed = data.get("links", {}).get("allow")
    if not _strings(allowed):
        raise RulesError("[links] allow must be a list of sites")
    return AnswerRules(rules, [Allowed.parse(e) for e in [*allowed, *extra_allowed]], reach)


def _strings(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


def _word_lists(data: object) -> dict[str, str]:
    """Each word list as one regular expression group (a word matches as a word's start)."""
    if not isinstance(data, dict):
        raise RulesError("[words] must be a table of word lists")
    lists: dict[str, str] = {}
    for name, entries in data.items():
        if not _strings(entries):
            raise RulesError(f"[words] {name} must be a list of words")
        lists[name] = "(?:" + "|".join(entries) + ")"
    return lists


def _rule(entry: object, words: Mapping[str, str]) -> Rule:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise RulesError("every [[rules]] entry needs a name")
    name = entry["name"]
    reason, patterns, near = entry.get("reason"), entry.get("patterns"), entry.get("near")
    if reason not in RULE_REASONS:
        raise RulesError(f"rule {name}: reason must be one of {sorted(RULE_REASONS)}")
    if not _strings(patterns):
        raise RulesError(f"rule {name}: patterns must be a list of regular expressions")
    if near is not None and near not in words:
        raise RulesError(f"rule {name}: near names no [words] list: {near!r}")
    compiled = tuple(_compile(name, pattern, words) for pattern in patterns)
    nearby = _compile(name, r"\b" + words[near], words) if near is not None else None
    return Rule(name, Reason(reason), compiled, nearby)


def _compile(name: str, pattern: str, words: Mapping[str, str]) -> re.Pattern[str]:
    def word_list(match: re.Match[str]) -> str:
        if match.group(1) not in words:
            raise RulesError(f"rule {name}: no [words] list named {match.group(1)!r}")
        return words[match.group(1)]

    try:
        return re.compile(_WORDS_REF.sub(word_list, pattern), re.IGNORECASE)
    except re.error as error:
        raise RulesError(f"rule {name}: {pattern!r} is not a regular expression: {error}") from None
