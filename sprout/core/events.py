"""Safety events: what operators learn of each safeguarding step, without any message body.

Every time a screen acts (the request's phrase lists or moderation, the answer's rules or
moderation) an event is recorded: its stage, source, category, severity and rule, the time and
the pseudonymised user, never the words. Severe ones (an emergency, a child at risk, a parent
in crisis) also go to the operators' webhook when one is set, through an outbox table that
`alerts.py` delivers (so a restart loses none, and the parent's reply never waits for it).
"""

from __future__ import annotations

import enum
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sprout.core.answer_rules import Finding, Reason
from sprout.core.metrics import SAFETY_EVENTS
from sprout.core.safety import Category, Concern

if TYPE_CHECKING:
    from sprout.core.store import Store


class Stage(enum.StrEnum):
    REQUEST = "request"
    ANSWER = "answer"


class Severity(enum.StrEnum):
    SEVERE = "severe"  # operators are alerted
    HIGH = "high"
    MEDIUM = "medium"


SEVERE = frozenset({Category.EMERGENCY.value, Category.CHILD_AT_RISK.value, Category.CRISIS.value})
UNCOVERED = "unsafe"  # a request moderation flagged that none of our categories covers


@dataclass(frozen=True)
class SafetyEvent:
    stage: Stage
    source: str  # "matcher", "moderation" or "rule"
    category: str  # one of our categories, "unsafe", or the answer screen's reason
    rule: str = ""  # the phrase list's language, the moderation categories, or the rule's name

    @property
    def severity(self) -> Severity:
        if self.category in SEVERE:
            return Severity.SEVERE
        return Severity.HIGH if self.stage is Stage.REQUEST else Severity.MEDIUM


@dataclass(frozen=True)
class Origin:
    """Where events come from: the user (pseudonymised when stored), the channel and the
    message (None outside the job log), which keeps a resumed job from recording twice."""

    user_id: str
    channel: str
    inbound_id: int | None


def request_events(concern: Concern) -> list[SafetyEvent]:
    """One event for each category the request screen found."""
    if concern.source == "moderation":
        rule = ",".join(sorted(concern.flags))
    else:
        rule = f"phrases/{concern.language}" if concern.language else "phrases"
    return [SafetyEvent(Stage.REQUEST, concern.source, c.value, rule) for c in concern.categories]


def uncovered_event(flags: frozenset[str]) -> SafetyEvent:
    return SafetyEvent(Stage.REQUEST, "moderation", UNCOVERED, ",".join(sorted(flags)))


def answer_event(finding: Finding) -> SafetyEvent:
    source = "moderation" if finding.reason is Reason.MODERATION else "rule"
    return SafetyEvent(Stage.ANSWER, source, finding.reason.value, finding.rule)


def alert_body(event: SafetyEvent, user: str, channel: str, at: datetime) -> str:
    """The JSON operators receive: what happened, when, to which (pseudonymised) user; never
    a message's words or a phone number. `id` lets a receiver drop a repeated delivery."""
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": "safeguarding_event",
            "category": event.category,
            "severity": event.severity.value,
            "stage": event.stage.value,
            "source": event.source,
            "rule": event.rule,
            "user": user,
            "channel": channel,
            "at": at.isoformat(),
        },
        separators=(",", ":"),
    )


class SafetyEvents:
    """Records events; `alert`, when operators have a webhook, wakes its outbox."""

    def __init__(self, store: Store, alert: Callable[[], None] | None = None) -> None:
        self._store = store
        self._alert = alert

    async def record(self, origin: Origin, events: Sequence[SafetyEvent]) -> None:
        added = await self._store.add_safety_events(origin, events, self._alert is not None)
        for event in added:
            SAFETY_EVENTS.labels(event.category, event.stage.value).inc()
        if self._alert is not None and any(e.severity is Severity.SEVERE for e in added):
            self._alert()
