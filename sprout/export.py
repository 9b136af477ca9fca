"""`sprout export`: every conversation turn with its timings, as CSV or JSON, for research.

User ids are pseudonymised (the same keyed hash as the logs), so an export can be shared without
phone numbers; the message texts are what the research is about and are kept, and so are the
comments parents write after a 👎 (their own words, like their questions).

`sprout export --programme` lists every unprompted message instead (regular ideas and
check-ins): what became of it, whether it was delivered and read (from Twilio's status
callbacks), tapped or replied to within 24 hours, what the parent said of the activity, and
each family's opt-out from regular ideas.

`sprout export --safety` lists the safety events instead, for operators: what the screens did,
when, for which pseudonymised user, and whether the webhook took the alert; never the words.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from sprout.core.experiments import Experiment
from sprout.core.logs import user_ref
from sprout.core.store import Store
from sprout.core.tables import (
    AnswerRow,
    AssignmentRow,
    CheckinRow,
    ChunkRow,
    ChunkState,
    FeedbackRow,
    InboundRow,
    NudgeRow,
    SafetyAlertRow,
    SafetyEventRow,
    UserRow,
)
from sprout.core.unprompted import NUDGE_PREFIX, SENT

FIELDS = (
    "user", "channel", "received_at", "question", "answer", "kind", "messages", "hold_sent",
    "first_message_s", "complete_s", "feedback", "feedback_comment", "arm",
)  # fmt: skip


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _seconds(start: datetime, end: datetime | None) -> float | None:
    finish = _utc(end)
    return None if finish is None else round((finish - start).total_seconds(), 3)


# Users who said "no research": left out of every export from then on.
_NO_RESEARCH = select(UserRow.user_id).where(UserRow.no_research.is_(True))

_Arms = dict[str, list[tuple[str, str, datetime]]]


async def _arms(connection: AsyncConnection) -> _Arms:
    """Each user's recorded arms: (experiment, arm, since when)."""
    rows = await connection.execute(
        select(
            AssignmentRow.user_id,
            AssignmentRow.experiment,
            AssignmentRow.arm,
            AssignmentRow.assigned_at,
        ).order_by(AssignmentRow.experiment)
    )
    arms: _Arms = {}
    for user_id, experiment, arm, assigned_at in rows:
        since = _utc(assigned_at)
        assert since is not None
        arms.setdefault(user_id, []).append((experiment, arm, since))
    return arms


async def export_turns(
    store: Store, experiments: Sequence[Experiment] = ()
) -> list[dict[str, Any]]:
    """Every turn, oldest first. `experiments` (the file's, when known) end each arm on its
    experiment's last day; an experiment no longer in the file keeps its arms open."""
    ends = {experiment.name: experiment.end for experiment in experiments}
    async with store.engine.connect() as connection:
        turns = await connection.execute(
            select(
                InboundRow.user_id,
                InboundRow.channel,
                InboundRow.received_at,
                InboundRow.text.label("question"),
                AnswerRow.id.label("answer_id"),
                AnswerRow.text.label("answer"),
                AnswerRow.kind,
                AnswerRow.completed_at,
            )
            .outerjoin(AnswerRow, AnswerRow.inbound_id == InboundRow.id)
            .where(InboundRow.user_id.not_in(_NO_RESEARCH))
            .order_by(InboundRow.id)
        )
        arms = await _arms(connection)
        chunks = await connection.execute(
            select(ChunkRow.answer_id, ChunkRow.is_hold, ChunkRow.sent_at).where(
                ChunkRow.state == ChunkState.SENT
            )
        )
        ratings = await connection.execute(
            select(FeedbackRow.answer_id, FeedbackRow.rating, FeedbackRow.comment).order_by(
                FeedbackRow.id
            )
        )
    feedback: dict[int, list[str]] = {}
    comments: dict[int, list[str]] = {}
    for answer_id, rating, comment in ratings:
        if answer_id is not None:
            feedback.setdefault(answer_id, []).append(rating)
            if comment:
                comments.setdefault(answer_id, []).append(comment)
    sent: dict[int, list[tuple[bool, datetime]]] = {}
    for answer_id, is_hold, sent_at in chunks:
        if sent_at is not None:
            sent.setdefault(answer_id, []).append((is_hold, sent_at))
    rows = []
    for turn in turns:
        received = _utc(turn.received_at)
        assert received is not None
        delivered = sent.get(turn.answer_id, []) if turn.answer_id is not None else []
        answer_sent = sorted(at for hold, at in delivered if not hold)
        rows.append(
            {
                "user": user_ref(turn.user_id),
                "channel": turn.channel,
                "received_at": received.isoformat(),
                "question": turn.question,
                "answer": turn.answer,
                "kind": turn.kind,
                "messages": len(answer_sent),
                "hold_sent": any(hold for hold, _ in delivered),
                "first_message_s": _seconds(received, answer_sent[0] if answer_sent else None),
                "complete_s": _seconds(received, turn.completed_at),
                # The 👍/👎 given to this answer ("up", "down"), in order.
                "feedback": " ".join(feedback.get(turn.answer_id, [])),
                # What the parent wrote when asked what would have been better, after a 👎
                # (their own words, kept like the questions; several joined by " | ").
                "feedback_comment": " | ".join(comments.get(turn.answer_id, [])),
                # The experiment arms the user was in when they wrote ("experiment:arm").
                "arm": ";".join(
                    f"{experiment}:{arm}"
                    for experiment, arm, since in arms.get(turn.user_id, [])
                    if since <= received and received.date() <= ends.get(experiment, date.max)
                ),
            }
        )
    return rows


SAFETY_FIELDS = (
    "at", "user", "channel", "stage", "source", "category", "severity", "rule", "alert",
)  # fmt: skip


async def export_safety(store: Store) -> list[dict[str, Any]]:
    """Every safety event, oldest first. `alert`: "" (none), "pending" or "delivered"."""
    event, alert = SafetyEventRow, aliased(SafetyAlertRow)
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(event, alert.id.label("alert_id"), alert.delivered_at)
            .outerjoin(alert, alert.event_id == event.id)
            .order_by(event.id)
        )
        return [
            {
                "at": row.at.replace(tzinfo=row.at.tzinfo or UTC).isoformat(),
                "user": row.user_ref,
                "channel": row.channel,
                "stage": row.stage,
                "source": row.source,
                "category": row.category,
                "severity": row.severity,
                "rule": row.rule,
                "alert": _alert_state(row.alert_id, row.delivered_at),
            }
            for row in rows
        ]


PROGRAMME_FIELDS = (
    "user", "channel", "kind", "due_at", "recorded_at", "outcome", "error", "sent", "delivered",
    "read", "tapped", "replied_24h", "activity", "verdict",
)  # fmt: skip
_DAY = timedelta(hours=24)
_RANK = {"delivered": 1, "read": 2}


async def export_programme(store: Store) -> list[dict[str, Any]]:
    """Every nudge, check-in and opt-out, oldest first, for users not out of research."""
    async with store.engine.connect() as connection:
        out = set(await connection.scalars(select(UserRow.user_id).where(UserRow.no_research)))
        nudges = (await connection.execute(_PROGRAMME.order_by(NudgeRow.id))).all()
        statuses = {
            inbound_id: status
            for inbound_id, status in await connection.execute(_ANSWER_STATUS)
            if status
        }
        parent = (await connection.execute(_PARENT_MESSAGES)).all()
    heard: dict[str, list[tuple[datetime, bool]]] = {}
    for user_id, received_at, payload in parent:
        heard.setdefault(user_id, []).append((_aware(received_at), bool(payload)))
    return [
        _programme_row(row, statuses, heard.get(row.user_id, []))
        for row in nudges
        if row.user_id not in out
    ]


def _programme_row(
    row: Any, statuses: dict[int, str], heard: list[tuple[datetime, bool]]
) -> dict[str, Any]:
    at = _aware(row.recorded_at)
    sent = row.outcome in SENT
    status = row.delivery_status or statuses.get(row.inbound_id or -1) or ""
    after = [tapped for moment, tapped in heard if at < moment <= at + _DAY] if sent else []
    return {
        "user": user_ref(row.user_id),
        "channel": row.channel,
        "kind": row.kind,
        "due_at": _aware(row.due_at).isoformat(),
        "recorded_at": at.isoformat(),
        "outcome": row.outcome,
        "error": row.error or "",
        "sent": sent,
        "delivered": sent and _RANK.get(status, 0) >= _RANK["delivered"],
        "read": sent and status == "read",
        "tapped": any(after),
        "replied_24h": bool(after),
        "activity": row.about or "",
        "verdict": row.verdict or "",
    }


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_PROGRAMME = select(
    NudgeRow.user_id, NudgeRow.channel, NudgeRow.kind, NudgeRow.due_at, NudgeRow.recorded_at,
    NudgeRow.outcome, NudgeRow.error, NudgeRow.delivery_status, NudgeRow.inbound_id,
    CheckinRow.about, CheckinRow.verdict,
).outerjoin(CheckinRow, CheckinRow.id == NudgeRow.checkin_id)  # fmt: skip
# The furthest status any message of each unprompted message's answer reached ("read" sorts
# after "delivered").
_ANSWER_STATUS = (
    select(AnswerRow.inbound_id, func.max(ChunkRow.delivery_status))
    .join(ChunkRow, ChunkRow.answer_id == AnswerRow.id)
    .join(NudgeRow, NudgeRow.inbound_id == AnswerRow.inbound_id)
    .where(ChunkRow.delivery_status.in_(("delivered", "read")))
    .group_by(AnswerRow.inbound_id)
)
_PARENT_MESSAGES = select(InboundRow.user_id, InboundRow.received_at, InboundRow.payload).where(
    InboundRow.message_id.not_like(f"{NUDGE_PREFIX}%")
)


def _alert_state(alert_id: int | None, delivered_at: datetime | None) -> str:
    if alert_id is None:
        return ""
    return "delivered" if delivered_at is not None else "pending"


def to_csv(rows: list[dict[str, Any]], fields: tuple[str, ...] = FIELDS) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, ensure_ascii=False, indent=2)
