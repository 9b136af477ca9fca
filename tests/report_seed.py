"""A seeded experiment in a real database, and what each user did, kept beside it so a test
can work every figure of the report out on its own.

Two arms with enough users, one with too few, on WhatsApp and Telegram; around them what the
report must leave out: a user who asked for "no research", messages before a user's arm and
after the experiment's end, nudges falling due (not the user's messages), fixed texts (help),
hold messages, and a member of another experiment.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from sprout.core.experiments import Arm, Experiment
from sprout.core.logs import user_ref
from sprout.core.store import Store
from sprout.core.tables import (
    AnswerRow,
    AssignmentRow,
    ChunkRow,
    ChunkState,
    FeedbackRow,
    InboundRow,
    NudgeRow,
    SafetyEventRow,
    UserRow,
)

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
EXPERIMENT = Experiment(
    name="hold_time",
    start=START.date(),
    end=date(2026, 11, 30),
    channels=frozenset({"whatsapp", "telegram"}),
    arms=(
        Arm("standard", 0.5, True, {}, {}),
        Arm("quick", 0.4, False, {}, {"hold_after_s": 2.0}),
        Arm("few", 0.1, False, {}, {}),
    ),
    information=None,
)
EXPERIMENTS_TOML = """
[experiments.hold_time]
start = 2026-11-02
end = 2026-11-30
channels = ["whatsapp", "telegram"]

[experiments.hold_time.arms.standard]
weight = 5
control = true

[experiments.hold_time.arms.quick]
weight = 4
settings = { hold_after_s = 2 }

[experiments.hold_time.arms.few]
weight = 1
"""
USERS = {"standard": 34, "quick": 28, "few": 6}
FIRST_S = {"standard": (3.0, 9.0), "quick": (1.0, 5.0), "few": (2.0, 6.0)}
GAPS = (timedelta(minutes=5), timedelta(minutes=40), timedelta(days=2), timedelta(days=8))
QUESTION = "why does my toddler throw food?"
LATER = START + timedelta(days=90)  # every user's 7 days are over by then


@dataclass
class Answered:
    received_at: datetime
    first_s: float
    bodies: list[str]
    completed_at: datetime
    ratings: list[str] = field(default_factory=list)


@dataclass
class Person:
    """What one member did, as the seed decided it."""

    user_id: str
    arm: str
    channel: str
    assigned_at: datetime
    answers: list[Answered] = field(default_factory=list)
    own_messages: list[datetime] = field(default_factory=list)  # questions, commands, taps
    nudged: bool = False
    tapped: bool = False
    opted_out: bool = False
    safety: bool = False


@dataclass
class _Writer:
    connection: AsyncConnection
    ids: count[int] = field(default_factory=count)

    async def inbound(self, person: Person, at: datetime, text: str, **extra: Any) -> int:
        values = {
            "channel": person.channel,
            "message_id": extra.pop("message_id", f"m{next(self.ids)}"),
            "user_id": person.user_id,
            "text": text,
            "received_at": at,
            "done": True,
            **extra,
        }
        row = await self.connection.execute(insert(InboundRow).values(**values))
        assert row.inserted_primary_key is not None
        return int(row.inserted_primary_key[0])

    async def answer(
        self, inbound_id: int, kind: str, chunks: list[tuple[bool, str, datetime]]
    ) -> int:
        completed = max(at for _, _, at in chunks) + timedelta(milliseconds=200)
        row = await self.connection.execute(
            insert(AnswerRow).values(
                inbound_id=inbound_id,
                text="…",
                kind=kind,
                started_at=chunks[0][2],
                completed_at=completed,
            )
        )
        assert row.inserted_primary_key is not None
        answer_id = int(row.inserted_primary_key[0])
        for seq, (hold, body, at) in enumerate(chunks):
            await self.connection.execute(
                insert(ChunkRow).values(
                    answer_id=answer_id,
                    seq=-1 if hold else seq,
                    is_hold=hold,
                    body=body,
                    state=ChunkState.SENT,
                    sent_at=at,
                    created_at=at,
                )
            )
        return answer_id


async def seed(store: Store, seed_value: int = 7) -> list[Person]:
    """Write the experiment's data; the members the report must count, as they were made."""
    rng = random.Random(seed_value)
    people: list[Person] = []
    async with store.writing() as connection:
        writer = _Writer(connection)
        number = count(1)
        for arm, users in USERS.items():
            for _ in range(users):
                people.append(await _member(writer, rng, arm, next(number)))
        people.append(await _outsiders(writer))
    return people


def _person(arm: str, n: int) -> Person:
    channel = "whatsapp" if n % 3 else "telegram"
    user_id = f"whatsapp:+4477009{n:05d}" if channel == "whatsapp" else f"telegram:{9000 + n}"
    return Person(user_id, arm, channel, START + timedelta(hours=3 * n, minutes=n))


async def _assign(writer: _Writer, person: Person, experiment: str = EXPERIMENT.name) -> None:
    await writer.connection.execute(
        insert(AssignmentRow).values(
            user_id=person.user_id,
            experiment=experiment,
            arm=person.arm,
            channel=person.channel,
            assigned_at=person.assigned_at,
        )
    )


async def _member(writer: _Writer, rng: random.Random, arm: str, n: int) -> Person:
    person = _person(arm, n)
    await _assign(writer, person)
    # Before their arm began: not counted.
    early = await writer.inbound(person, person.assigned_at - timedelta(hours=1), QUESTION)
    await writer.answer(early, "chat", [(False, "x" * 999, person.assigned_at)])
    at = person.assigned_at
    for index in range(rng.randint(1, 3)):
        if index:
            at = person.answers[-1].completed_at + rng.choice(GAPS)
        await _question(writer, rng, person, at)
        if rng.random() < 0.2:  # a command shortly after: neither an answer nor a follow-up
            help_at = person.answers[-1].completed_at + timedelta(minutes=1)
            person.own_messages.append(help_at)
            help_id = await writer.inbound(person, help_at, "help")
            await writer.answer(help_id, "help", [(False, "menu", help_at + timedelta(seconds=1))])
    await _nudges(writer, rng, person)
    if rng.random() < 0.15:
        person.safety = True
        await _safety_event(writer, person, person.assigned_at + timedelta(seconds=30))
    return person


async def _question(writer: _Writer, rng: random.Random, person: Person, at: datetime) -> None:
    low, high = FIRST_S[person.arm]
    first_s = round(rng.uniform(low, high), 3)
    bodies = ["y" * rng.randint(40, 600) for _ in range(rng.randint(1, 3))]
    inbound_id = await writer.inbound(person, at, QUESTION)
    sent = [at + timedelta(seconds=first_s + k) for k in range(len(bodies))]
    chunks = [(False, body, moment) for body, moment in zip(bodies, sent, strict=True)]
    if first_s > 5:  # the hold message went first: not the answer's first message
        chunks.insert(0, (True, "One moment…", at + timedelta(seconds=5)))
    answer_id = await writer.answer(inbound_id, "chat", chunks)
    answered = Answered(at, first_s, bodies, sent[-1] + timedelta(milliseconds=200))
    draw = rng.random()
    if draw < 0.4:
        answered.ratings.append("up" if draw < 0.28 else "down")
        await writer.connection.execute(
            insert(FeedbackRow).values(
                user_id=person.user_id,
                answer_id=answer_id,
                kind="chat",
                rating=answered.ratings[0],
                created_at=answered.completed_at,
            )
        )
    person.answers.append(answered)
    person.own_messages.append(at)


async def _nudges(writer: _Writer, rng: random.Random, person: Person) -> None:
    if rng.random() >= 0.5:
        return
    person.nudged = True
    due = person.answers[-1].completed_at + timedelta(hours=20)
    await _nudge_row(writer, person, due, "sent")
    # The nudge itself is a message in the user's conversation, answered; not theirs.
    nudge_id = await writer.inbound(
        person, due, "(a regular idea)", message_id=f"nudge:{person.user_id}:{due.date()}"
    )
    await writer.answer(nudge_id, "activities", [(False, "an idea", due + timedelta(seconds=3))])
    if rng.random() < 0.4:
        person.tapped = True
        tap_at = due + timedelta(hours=1)
        person.own_messages.append(tap_at)
        await writer.inbound(person, tap_at, "Yes please", payload="sprout:nudge")
    if rng.random() < 0.3:
        person.opted_out = True
        await _nudge_row(writer, person, due + timedelta(days=1), "opted_out")


async def _nudge_row(writer: _Writer, person: Person, due: datetime, outcome: str) -> None:
    await writer.connection.execute(
        insert(NudgeRow).values(
            user_id=person.user_id, kind="nudge", due_at=due, outcome=outcome, recorded_at=due
        )
    )


async def _safety_event(writer: _Writer, person: Person, at: datetime) -> None:
    await writer.connection.execute(
        insert(SafetyEventRow).values(
            at=at,
            user_ref=user_ref(person.user_id),
            channel=person.channel,
            stage="request",
            source="phrases",
            category="urgent_health",
            severity="urgent",
        )
    )


async def _outsiders(writer: _Writer) -> Person:
    """Data the report must not count; and a member who wrote only after the experiment's
    end (counted, with nothing done)."""
    private = _person("quick", 500)  # asked for "no research"
    await _assign(writer, private)
    await writer.connection.execute(
        insert(UserRow).values(user_id=private.user_id, no_research=True)
    )
    other = _person("standard", 501)  # in another experiment only
    await _assign(writer, other, experiment="greetings")
    for person in (private, other):
        asked = await writer.inbound(person, person.assigned_at, QUESTION)
        await writer.answer(
            asked, "chat", [(False, "z" * 50, person.assigned_at + timedelta(seconds=60))]
        )
        await _safety_event(writer, person, person.assigned_at)
    late = _person("quick", 502)  # wrote only after the experiment ended
    late.assigned_at = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    await _assign(writer, late)
    asked = await writer.inbound(late, datetime(2026, 12, 1, 0, 5, tzinfo=UTC), QUESTION)
    await writer.answer(asked, "chat", [(False, "z", datetime(2026, 12, 1, 0, 6, tzinfo=UTC))])
    return late


def seed_data_dir(data_dir: Path) -> tuple[list[Person], Path]:
    """Seed the database Sprout opens in `data_dir` (SPROUT_DATA_DIR) and write the
    experiments file beside it: the members made, and the file for SPROUT_EXPERIMENTS."""

    async def run() -> list[Person]:
        store = Store.from_url(f"sqlite+aiosqlite:///{data_dir / 'sprout.db'}")
        try:
            await store.create_schema()
            return await seed(store)
        finally:
            await store.close()

    people = asyncio.run(run())
    path = data_dir / "experiments.toml"
    path.write_text(EXPERIMENTS_TOML)
    return people, path
