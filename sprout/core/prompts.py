"""Prompt templates and fixed texts, loaded from `prompts/` and checked at start-up.

A missing file, a missing key or an unknown placeholder stops start-up with a message naming
the file: a typo in a prompt must not surface as a confused answer to a parent.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, TypedDict

from sprout.core.answer_rules import AnswerRules, Reason, RulesError, parse_rules
from sprout.core.safety import Category, PhraseError, PhraseList, PhraseMatcher


class PromptError(RuntimeError):
    """A prompt file is missing or malformed."""


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


TEXT_KEYS = frozenset(
    {
        "help", "explain_empty", "activities_empty", "hold", "apology", "too_long",
        "media_only", "settings", "profile_saved", "reset_done", "forgotten", "stopped",
        "places_indoors", "places_outdoors", "places_both", "all_areas", "not_set",
        "age_years", "age_months", "slow_down", "voice_failed", "intro", "cut_short",
        "unsafe_dose", "unsafe_diagnosis", "unsafe_link", "unsafe_answer",
        "button_another", "button_more", "buttons_hint", "buttons_hint_more", "feedback_thanks",
        "feedback_better", "feedback_noted",
        "nudges_on", "nudges_none", "nudges_stopped", "checkins_stopped", "nudges_paused",
        "nudges_setting", "nudges_setting_off", "nudges_setting_paused", "day_names", "every_day",
        "on_days", "and", "when", "nudge_request", "thanks_ideas", "button_ideas",
        "buttons_hint_ideas", "checkin_one", "checkin_list", "button_loved", "button_untried",
        "button_tricky", "buttons_hint_checkin", "checkin_loved", "checkin_untried",
        "checkin_tricky", "checkin_thanks", "research_info", "research_off", "research_on",
        "research_setting_in", "research_setting_out",
    }
)  # fmt: skip
TEXT_PLACEHOLDERS = frozenset(
    {"max_chars", "profile", "n", "health", "when", "days", "often", "time", "place", "ideas",
     "research", "activity"}
)  # fmt: skip
# The fixed text that replaces the rest of an answer the answer screen stopped, per reason.
SAFE_TEXTS = {
    Reason.DOSE: "unsafe_dose",
    Reason.DIAGNOSIS: "unsafe_diagnosis",
    Reason.LINK: "unsafe_link",
    Reason.MODERATION: "unsafe_answer",
}
DEFAULT_LANGUAGE = "en"
DEFAULT_REGION = "uk"
# The help a region offers, as its file names them; safeguarding responses use them.
SERVICES = frozenset({"emergency", "health", "child", "crisis", "domestic_abuse"})
FLAGGED = "flagged"  # the response to a request moderation flagged that no category covers
_REGION_NAME = re.compile(r"[a-z0-9_-]+")
# The answer prompts an experiment's arm may swap for another file, and the placeholders each
# may use (the names are the Prompts fields and the default files' stems).
TEMPLATE_FIELDS: Mapping[str, frozenset[str]] = {
    "explain": frozenset({"age", "question", "language"}),
    "activities": frozenset({"age", "places", "areas", "topic", "language", "avoid"}),
    "activity_one": frozenset({"age", "places", "areas", "topic", "language", "avoid"}),
    "chat": frozenset({"age", "places", "areas", "language", "message"}),
}


@dataclass(frozen=True)
class Template:
    system: str
    user: str
    # The most a model may write for this kind of answer: a rambling model is cut, not sent.
    max_tokens: int
    # The rules every prompt starts with (prompts/rules.toml), already filled in.
    rules: str = ""

    def messages(self, **values: str) -> list[ChatMessage]:
        system = self.system.format(**values).strip()
        return [
            {"role": "system", "content": f"{self.rules}\n\n{system}" if self.rules else system},
            {"role": "user", "content": self.user.format(**values).strip()},
        ]


@dataclass(frozen=True)
class Safeguarding:
    """What the safeguarding stages read: the phrase matcher, each category's response per
    language (with the region's numbers in), and the prompt for the kind reply after it."""

    matcher: PhraseMatcher
    responses: Mapping[str, Mapping[str, str]]  # language -> category (or FLAGGED) -> text
    reply: Template
    guidance: Mapping[Category, str]  # what the kind reply should do, per category
    region: str
    services: Mapping[str, Mapping[str, str]]  # language ("" the default) -> service -> text

    def response(self, key: str, language: str | None = None) -> str:
        table = self.responses.get(language or DEFAULT_LANGUAGE)
        return (table or self.responses[DEFAULT_LANGUAGE])[key]

    def service(self, key: str, language: str | None = None) -> str:
        return self.services.get(language or "", {}).get(key) or self.services[""][key]


@dataclass(frozen=True)
class Prompts:
    explain: Template
    activities: Template
    activity_one: Template  # one idea at a time, on messaging channels
    chat: Template
    profile_instructions: str
    profile_tool: Mapping[str, Any]
    continue_instruction: str
    eyfs_areas: Mapping[str, str]
    texts: Mapping[str, Mapping[str, str]]
    safeguarding: Safeguarding
    answer_rules: AnswerRules
    # What the family said about their last activity, said to the model asking for the next
    # (prompts/steering.toml), by verdict: loved, untried, tricky.
    steering: Mapping[str, str]

    def safe_text(self, reason: Reason, language: str | None = None) -> str:
        """What replaces an answer the answer screen stopped, for `reason`."""
        health = self.safeguarding.service("health", language)
        return self.text(SAFE_TEXTS[reason], language, health=health)

    def safe_texts(self) -> frozenset[str]:
        """Every such text in every language (a resumed answer that ended with one is over)."""
        return frozenset(
            self.safe_text(reason, language) for reason in SAFE_TEXTS for language in self.texts
        )

    def text(self, key: str, language: str | None = None, **values: str) -> str:
        table = self.texts.get(language or DEFAULT_LANGUAGE) or self.texts[DEFAULT_LANGUAGE]
        return table[key].format(**values).strip()

    def has_language(self, language: str | None) -> bool:
        return language in self.texts

    def areas_description(self, chosen: tuple[str, ...] = ()) -> str:
        names = chosen or tuple(self.eyfs_areas)
        return "\n".join(f"- {name}: {self.eyfs_areas[name]}" for name in names)


def _read(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        raise PromptError(f"prompt file missing: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise PromptError(f"prompt file {path} is not valid TOML: {error}") from None


def _string(data: Mapping[str, object], key: str, path: Path, allowed: frozenset[str]) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise PromptError(f"{path}: '{key}' must be a non-empty string")
    fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    unknown = fields - allowed
    if unknown:
        raise PromptError(f"{path}: '{key}' uses unknown placeholders {sorted(unknown)}")
    return value


def _template(path: Path, allowed: frozenset[str]) -> Template:
    data = _read(path)
    max_tokens = data.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 16:
        raise PromptError(f"{path}: max_tokens must be a whole number of at least 16")
    system, user = _string(data, "system", path, allowed), _string(data, "user", path, allowed)
    return Template(system, user, max_tokens)


def check_template(path: Path, name: str) -> None:
    """Raises PromptError unless `path` would do as the `name` prompt."""
    _template(path, TEMPLATE_FIELDS[name])


def _texts(directory: Path) -> dict[str, dict[str, str]]:
    texts: dict[str, dict[str, str]] = {}
    for path in sorted(directory.glob("*.toml")):
        data = _read(path)
        missing = TEXT_KEYS - data.keys()
        if missing:
            raise PromptError(f"{path}: missing texts {sorted(missing)}")
        texts[path.stem] = {key: _string(data, key, path, TEXT_PLACEHOLDERS) for key in TEXT_KEYS}
    if DEFAULT_LANGUAGE not in texts:
        raise PromptError(f"{directory}: no {DEFAULT_LANGUAGE}.toml with the fixed texts")
    return texts


def _region(directory: Path, region: str) -> dict[str, dict[str, str]]:
    """The region's services, per language: "" holds the defaults, a language's table what
    it says differently."""
    if not _REGION_NAME.fullmatch(region):
        raise PromptError(f"SPROUT_REGION {region!r}: lower-case letters, digits, - and _ only")
    path = directory / "regions" / f"{region}.toml"
    if not path.is_file():
        raise PromptError(f"region file missing: {path} (set SPROUT_REGION, or add the file)")
    data = _read(path)
    tables = {key: value for key, value in data.items() if isinstance(value, dict)}
    base = tables.pop("services", None)
    if base is None or SERVICES - base.keys():
        raise PromptError(f"{path}: [services] must give {sorted(SERVICES)}")
    services = {"": {key: _string(base, key, path, frozenset()) for key in SERVICES}}
    for language, table in tables.items():
        unknown = table.keys() - SERVICES
        if unknown:
            raise PromptError(f"{path}: [{language}] names unknown services {sorted(unknown)}")
        services[language] = {key: _string(table, key, path, frozenset()) for key in table}
    return services


def _phrase_list(path: Path, data: Mapping[str, Any]) -> PhraseList:
    matching, spellings = data.get("matching", {}), data.get("spellings", {})
    phrases: dict[Category, tuple[str, ...]] = {}
    for category in Category:
        found = data[category.value].get("phrases")
        if not isinstance(found, list) or not found or not all(isinstance(p, str) for p in found):
            raise PromptError(f"{path}: [{category.value}] phrases must be a list of phrases")
        phrases[category] = tuple(found)
    if not all(isinstance(v, str) for v in spellings.values()):
        raise PromptError(f"{path}: [spellings] must map words to words")
    return PhraseList(
        path.stem,
        phrases,
        spellings,
        frozenset(matching.get("real_words", ())),
        bool(matching.get("split_apostrophes", False)),
    )


_Safety = tuple[list[PhraseList], dict[str, dict[str, str]], dict[str, dict[str, str]]]


def _safety(directory: Path, region: str) -> _Safety:
    """Each language's phrase list, its responses with the region's numbers filled in, and
    the region's services."""
    services = _region(directory, region)
    keys = [category.value for category in Category] + [FLAGGED]
    lists, responses = [], {}
    for path in sorted((directory / "safety").glob("*.toml")):
        data = _read(path)
        tables = {key: value for key, value in data.items() if isinstance(value, dict)}
        unknown = data.keys() - {*keys, "matching", "spellings"}
        missing = [key for key in keys if key not in tables]
        if unknown or missing:
            raise PromptError(f"{path}: unknown {sorted(unknown)}, missing {missing} tables")
        lists.append(_phrase_list(path, tables))
        numbers = {**services[""], **services.get(path.stem, {})}
        responses[path.stem] = {
            key: _string(tables[key], "response", path, SERVICES).format(**numbers).strip()
            for key in keys
        }
    if DEFAULT_LANGUAGE not in responses:
        raise PromptError(f"{directory / 'safety'}: no {DEFAULT_LANGUAGE}.toml")
    return lists, responses, services


def _safeguarding(directory: Path, region: str) -> Safeguarding:
    lists, responses, services = _safety(directory, region)
    try:
        matcher = PhraseMatcher(lists)
    except PhraseError as error:
        raise PromptError(f"{directory / 'safety'}: {error}") from None
    path = directory / "safeguarding.toml"
    reply = _template(path, frozenset({"language", "concern", "help", "message"}))
    guidance = _read(path).get("guidance")
    kind = [category for category in Category if category is not Category.EMERGENCY]
    if not isinstance(guidance, dict):
        raise PromptError(f"{path}: [guidance] missing")
    return Safeguarding(
        matcher,
        responses,
        reply,
        {category: _string(guidance, category.value, path, frozenset()) for category in kind},
        region,
        services,
    )


def _answer_rules(directory: Path, region: str) -> AnswerRules:
    """The answer screen's rules, with the region's own sites on the allow-list."""
    path = directory / "answer_rules.toml"
    region_path = directory / "regions" / f"{region}.toml"
    links = _read(region_path).get("links", [])
    if not isinstance(links, list) or not all(isinstance(link, str) for link in links):
        raise PromptError(f"{region_path}: links must be a list of sites")
    try:
        return parse_rules(_read(path), links)
    except RulesError as error:
        raise PromptError(f"{path}: {error}") from None


def _with_rules(template: Template, rules: str) -> Template:
    return Template(template.system, template.user, template.max_tokens, rules)


def swapped(prompts: Prompts, directory: Path, files: Mapping[str, str]) -> Prompts:
    """`prompts` with some answer prompts read from other files (an experiment's arm)."""
    rules = prompts.explain.rules

    def template(name: str) -> Template:
        if name not in files:
            current: Template = getattr(prompts, name)
            return current
        return _with_rules(_template(directory / files[name], TEMPLATE_FIELDS[name]), rules)

    return replace(
        prompts,
        explain=template("explain"),
        activities=template("activities"),
        activity_one=template("activity_one"),
        chat=template("chat"),
    )


def _rules_text(directory: Path, answer_rules: AnswerRules) -> str:
    """The rules every prompt starts with, the allow-list filled in."""
    path = directory / "rules.toml"
    sites = ", ".join(a.host + a.path for a in answer_rules.allowed)
    return _string(_read(path), "system", path, frozenset({"links"})).format(links=sites).strip()


def load_prompts(directory: Path, region: str = DEFAULT_REGION) -> Prompts:
    if not directory.is_dir():
        raise PromptError(f"prompts directory not found: {directory} (set SPROUT_PROMPTS_DIR)")
    areas = _read(directory / "eyfs.toml").get("areas")
    if not isinstance(areas, dict) or len(areas) != 7:
        raise PromptError(f"{directory / 'eyfs.toml'}: [areas] must list the seven EYFS areas")
    continuation = _read(directory / "continue.toml")
    profile = _read(directory / "profile.toml")
    tool = profile.get("tool")
    if not isinstance(tool, dict) or tool.get("function", {}).get("name") != "update_profile":
        raise PromptError(f"{directory / 'profile.toml'}: [tool] must define update_profile")
    safeguarding = _safeguarding(directory, region)
    answer_rules = _answer_rules(directory, region)
    rules = _rules_text(directory, answer_rules)

    def ruled(name: str) -> Template:
        """A prompt template that every answer's rules come before."""
        return _with_rules(_template(directory / f"{name}.toml", TEMPLATE_FIELDS[name]), rules)

    return Prompts(
        explain=ruled("explain"),
        activities=ruled("activities"),
        activity_one=ruled("activity_one"),
        chat=ruled("chat"),
        profile_instructions=_string(
            profile, "instructions", directory / "profile.toml", frozenset()
        ).strip(),
        profile_tool=tool,
        continue_instruction=_string(
            continuation, "user", directory / "continue.toml", frozenset()
        ).strip(),
        eyfs_areas={str(name): str(text) for name, text in areas.items()},
        texts=_texts(directory / "texts"),
        safeguarding=replace(safeguarding, reply=_with_rules(safeguarding.reply, rules)),
        answer_rules=answer_rules,
        steering=_steering(directory / "steering.toml"),
    )


def _steering(path: Path) -> dict[str, str]:
    data = _read(path)
    return {
        verdict: _string(data, verdict, path, frozenset({"activity"})).strip()
        for verdict in ("loved", "untried", "tricky")
    }
