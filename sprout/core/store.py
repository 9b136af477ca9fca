"""Durable state: the inbound log (dedupe + job queue of record), answers and their chunks.

Every chunk is written before it is sent and marked after, so a restart knows exactly what the
user has and has not received.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    bindparam,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from sprout.core.batching import GroupCommit
from sprout.core.events import Origin, SafetyEvent, Severity, alert_body
from sprout.core.logs import user_ref
from sprout.core.messages import Incoming, Media
from sprout.core.oldest_first import OldestFirstLock
from sprout.core.tables import (
    AnswerRow,
    AssignmentRow,
    CheckinRow,
    ChunkRow,
    ChunkState,
    FeedbackRow,
    IdeaRow,
    InboundRow,
    NudgeRow,
    SafetyAlertRow,
    SafetyEventRow,
    SubscriptionRow,
    UserRow,
    utc_now,
)
from sprout.migrations import upgrade_to_head


def aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone; they were stored in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


TOPIC_CHARS = TITLE_CHARS = 200
# In place of the pseudonym on a safety event whose user said *forget me* before its alert
# reached the operators (never a pseudonym: those are 16 hex digits).
FORGOTTEN = "forgotten"


def topic_key(topic: str) -> str:
    """A topic as ideas are filed under it: "Dinosaurs!" and "dinosaurs" are one topic."""
    return " ".join(topic.casefold().strip(" .!?¡¿").split())[:TOPIC_CHARS]


# Twilio's status callbacks can arrive out of order; never step back from a later state.
_FAILED = frozenset({"failed", "undelivered"})
_STATUS_RANK = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}


@dataclass(frozen=True)
class StoredChunk:
    id: int
    seq: int
    is_hold: bool
    body: str
    source: str
    state: ChunkState
    created_at: datetime


@dataclass(frozen=True)
class Turn:
    user_text: str
    answer_text: str


@dataclass(frozen=True)
class UserState:
    """What the bot knows about a user when it answers their message `inbound_id`."""

    profile: dict[str, Any]
    opted_out: bool
    first_contact: bool
    history: tuple[Turn, ...]
    no_research: bool = False  # kept out of experiments and exports


@dataclass(frozen=True)
class Alert:
    """A severe event's webhook delivery, claimed by this process for a while."""

    id: int
    body: str
    attempts: int


@dataclass(frozen=True)
class Job:
    """One inbound message and everything already done about it."""

    inbound_id: int
    incoming: Incoming
    done: bool
    answer_id: int | None
    answer_complete: bool
    answer_kind: str | None
    chunks: tuple[StoredChunk, ...]


WAL_SWITCH_ATTEMPTS = 100
HOLD_SEQ = 0  # the hold message, when sent, always comes first


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers and the single writer overlap; NORMAL sync survives a killed process.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    """Switching a new file to WAL needs it to itself, and SQLite does not wait for that: when
    two processes create the database at once (`make run` starts the server and the web page
    together), the one that loses tries again once the other's first transaction is over."""
    for attempt in range(WAL_SWITCH_ATTEMPTS):
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except Exception as error:  # the driver's OperationalError, adapted or not
            if "locked" not in str(error) or attempt == WAL_SWITCH_ATTEMPTS - 1:
                raise
            time.sleep(0.05)  # only ever while two processes create the same new file


class Store:
    """The hot paths (one job's reads and writes) are SQLAlchemy Core statements on a plain
    connection: each ORM session transaction costs a unit of work on top of the statements."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._session = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite takes one writer at a time: queueing writers here, instead of letting hundreds
        # of jobs poll the file lock, never ends in "database is locked", and lets the job
        # answering the oldest message write first.
        self._one_writer = OldestFirstLock() if engine.dialect.name == "sqlite" else None
        dialect_insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        self._insert_new_inbound = (
            dialect_insert(InboundRow)
            .on_conflict_do_nothing(index_elements=["channel", "message_id"])
            .returning(InboundRow.id, InboundRow.channel, InboundRow.message_id)
        )
        self._inbound: GroupCommit[Incoming, int | None] = GroupCommit(self._record_inbound_batch)
        self._insert_new_event = (
            dialect_insert(SafetyEventRow)
            .on_conflict_do_nothing(index_elements=["inbound_id", "stage", "category"])
            .returning(SafetyEventRow.id)
        )

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction on a Core connection: committed on leaving, else rolled back."""
        async with contextlib.AsyncExitStack() as stack:
            if self._one_writer is not None:
                await stack.enter_async_context(self._one_writer.held())
            yield await stack.enter_async_context(self.engine.begin())

    def writing(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction for the stores of features kept in modules of their own."""
        return self._write()

    @contextlib.asynccontextmanager
    async def _write_session(self) -> AsyncIterator[AsyncSession]:
        """One write transaction through the ORM, for the rarer per-user updates."""
        async with contextlib.AsyncExitStack() as stack:
            if self._one_writer is not None:
                await stack.enter_async_context(self._one_writer.held())
            yield await stack.enter_async_context(self._session.begin())

    @classmethod
    def from_url(cls, url: str) -> Store:
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        # Every use of a connection ends its transaction (`begin()` commits or rolls back,
        # `connect()` rolls back on close): the pool's own rollback on return would be one
        # more round trip to the driver's thread for every statement, to do nothing.
        engine = create_async_engine(url, pool_reset_on_return=None)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return cls(engine)

    async def create_schema(self) -> None:
        """Migrate the database to the newest schema; safe when several processes start at once."""
        async with self.engine.begin() as connection:
            await connection.run_sync(upgrade_to_head)

    async def close(self) -> None:
        await self.engine.dispose()

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(select(1))

    async def record_inbound(self, incoming: Incoming) -> int | None:
        """Log a new message; None when this channel message id was seen before. Messages
        recorded at the same time share a transaction (see GroupCommit)."""
        return await self._inbound.write(incoming)

    async def _record_inbound_batch(self, messages: Sequence[Incoming]) -> list[int | None]:
        keys = [(incoming.channel, incoming.message_id) for incoming in messages]
        first = {key: index for index, key in reversed(list(enumerate(keys)))}
        values = [_inbound_values(messages[index]) for index in sorted(first.values())]
        # Not behind the queue of answer writes (`_write`): acknowledging a webhook waits for
        # this one. At most one such batch is written at a time, so SQLite's own lock, with its
        # busy timeout, is enough to order it with the single other writer.
        async with self.engine.begin() as connection:
            rows = await connection.execute(self._insert_new_inbound, values)
            ids = {(channel, message_id): inbound_id for inbound_id, channel, message_id in rows}
        # A message id seen before, or twice in this batch, is new once at most.
        return [ids.get(key) if first[key] == index else None for index, key in enumerate(keys)]

    async def unfinished(
        self, user_id: str | None = None, channels: Collection[str] | None = None
    ) -> list[tuple[int, str]]:
        """(inbound id, user id) of every message not yet fully answered, oldest first; only
        one user's, or only those that came through `channels`, when given (a message from
        the web page or `sprout chat` is not the server's to resume)."""
        query = (
            select(InboundRow.id, InboundRow.user_id)
            .where(InboundRow.done.is_(False))
            .order_by(InboundRow.id)
        )
        if user_id is not None:
            query = query.where(InboundRow.user_id == user_id)
        if channels is not None:
            query = query.where(InboundRow.channel.in_(list(channels)))
        async with self.engine.connect() as connection:
            rows = await connection.execute(query)
            return [(inbound_id, owner) for inbound_id, owner in rows]

    async def unfinished_count(self) -> int:
        """How many messages are not yet fully answered."""
        async with self.engine.connect() as connection:
            count = await connection.scalar(
                select(func.count()).select_from(InboundRow).where(InboundRow.done.is_(False))
            )
        return int(count or 0)

    async def load_job(self, inbound_id: int) -> Job | None:
        async with self.engine.connect() as connection:
            rows = (await connection.execute(_LOAD_JOB, {"inbound_id": inbound_id})).all()
        if not rows:
            return None
        first = rows[0]
        incoming = Incoming(
            channel=first[0],
            user_id=first[1],
            text=first[2],
            message_id=first[3],
            media=tuple(Media(url, content_type) for url, content_type in first[4]),
            received_at=aware(first[5]),
            bot_address=first[6],
            payload=first[18],
        )
        chunks = tuple(
            StoredChunk(
                row[11], row[12], row[13], row[14], row[15], ChunkState(row[16]), aware(row[17])
            )
            for row in rows
            if row[11] is not None
        )
        answer_id: int | None = first[8]
        return Job(
            inbound_id=inbound_id,
            incoming=incoming,
            done=bool(first[7]),
            answer_id=answer_id,
            answer_complete=answer_id is not None and first[9] is not None,
            answer_kind=first[10],
            chunks=chunks,
        )

    async def start_answer(self, inbound_id: int) -> int:
        """The id of the message's answer, started now unless it already was."""
        # A job starts an answer once: try the insert alone, and look the answer up only when
        # the unique inbound id says it already exists.
        try:
            async with self._write() as connection:
                answer_id: int = (
                    await connection.execute(
                        _INSERT_ANSWER,
                        {
                            "inbound_id": inbound_id,
                            "started_at": utc_now(),
                            "text": None,
                            "kind": None,
                        },
                    )
                ).scalar_one()
                return answer_id
        except IntegrityError:
            async with self.engine.connect() as connection:
                existing = await connection.scalar(
                    select(AnswerRow.id).where(AnswerRow.inbound_id == inbound_id)
                )
            if existing is None:
                raise  # not a duplicate answer: the message itself is gone
            return int(existing)

    async def add_chunk(
        self,
        answer_id: int,
        seq: int,
        body: str,
        source: str = "",
        state: ChunkState = ChunkState.PENDING,
    ) -> int:
        """Record a chunk. A chunk about to be handed to the channel can be recorded straight
        as `SENDING`, saving the write that would mark it so."""
        row = {"answer_id": answer_id, "seq": seq, "body": body, "source": source}
        return await self._insert_chunk({**row, "is_hold": False, "state": state})

    async def add_hold(self, answer_id: int, body: str) -> int:
        """Record the hold message, about to be sent: it always comes first in the answer."""
        row = {"answer_id": answer_id, "seq": HOLD_SEQ, "body": body, "source": ""}
        return await self._insert_chunk({**row, "is_hold": True, "state": ChunkState.SENDING})

    async def _insert_chunk(self, values: dict[str, Any]) -> int:
        async with self._write() as connection:
            row = {**values, "created_at": utc_now()}
            chunk_id: int = (await connection.execute(_INSERT_CHUNK, row)).scalar_one()
            return chunk_id

    async def mark_chunk(
        self,
        chunk_id: int,
        state: ChunkState,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None:
        await self.mark_chunks([chunk_id], state, provider_id=provider_id, error=error)

    async def mark_chunks(
        self,
        chunk_ids: Sequence[int],
        state: ChunkState,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """Mark chunks (sent together in one message) in one transaction."""
        async with self._write() as connection:
            if chunk_ids:
                await connection.execute(
                    _MARK_CHUNKS,
                    {
                        "chunk_ids": list(chunk_ids),
                        "new_state": state,
                        "new_provider_id": provider_id,
                        "new_error": error,
                        "new_sent_at": utc_now() if state is ChunkState.SENT else None,
                    },
                )

    async def drop_unsent(self, answer_id: int) -> None:
        """Forget generated-but-unsent chunks of an unfinished answer before generating again."""
        async with self._write() as connection:
            await connection.execute(
                delete(ChunkRow).where(
                    ChunkRow.answer_id == answer_id, ChunkRow.state == ChunkState.PENDING
                )
            )

    async def complete_answer(
        self,
        answer_id: int,
        text: str,
        kind: str | None = None,
    ) -> None:
        """`kind` names what answered (explain, chat...); only model answers become history."""
        async with self._write() as connection:
            await connection.execute(
                _COMPLETE_ANSWER,
                {"answer_id": answer_id, "new_text": text, "new_kind": kind, "now": utc_now()},
            )

    async def user_state(
        self, user_id: str, inbound_id: int, history_kinds: frozenset[str], max_turns: int = 40
    ) -> UserState:
        params = {"user_id": user_id, "before": inbound_id}
        async with self.engine.connect() as connection:
            # The user's row (NULLs when there is none) and whether they wrote before.
            row = (await connection.execute(_USER, params)).one()
            profile, opted_out, earlier_id, no_research = row
            rows = await connection.execute(
                _HISTORY, {**params, "kinds": list(history_kinds), "max_turns": max_turns}
            )
            turns = [Turn(question, answer or "") for question, answer in rows]
        return UserState(
            profile=dict(profile) if profile else {},
            opted_out=bool(opted_out),
            first_contact=earlier_id is None,
            history=tuple(reversed(turns)),
            no_research=bool(no_research),
        )

    async def _user(self, session: AsyncSession, user_id: str) -> UserRow:
        user: UserRow | None = await session.get(UserRow, user_id)
        if user is None:
            user = UserRow(user_id=user_id, profile={}, opted_out=False, history_after=0)
            session.add(user)
        return user

    async def save_profile(self, user_id: str, profile: dict[str, Any]) -> None:
        async with self._write_session() as session:
            (await self._user(session, user_id)).profile = profile

    async def set_inbound_text(self, inbound_id: int, text: str) -> None:
        """What a voice note said, kept as the message's text."""
        async with self._write() as connection:
            await connection.execute(
                update(InboundRow).where(InboundRow.id == inbound_id).values(text=text)
            )

    async def set_opted_out(self, user_id: str, opted_out: bool) -> None:
        async with self._write_session() as session:
            (await self._user(session, user_id)).opted_out = opted_out

    async def set_no_research(self, user_id: str, no_research: bool) -> None:
        async with self._write_session() as session:
            (await self._user(session, user_id)).no_research = no_research

    async def reset_history(self, user_id: str, after_inbound_id: int) -> None:
        async with self._write_session() as session:
            (await self._user(session, user_id)).history_after = after_inbound_id

    async def erase_user(self, user_id: str, keep_inbound_id: int | None = None) -> None:
        """Delete every row about a user, except (optionally) the message being answered, so
        the confirmation can still be delivered and recorded before that goes too."""
        async with self._write() as connection:
            inbound = select(InboundRow.id).where(InboundRow.user_id == user_id)
            if keep_inbound_id is not None:
                inbound = inbound.where(InboundRow.id != keep_inbound_id)
            answers = select(AnswerRow.id).where(AnswerRow.inbound_id.in_(inbound))
            await connection.execute(delete(ChunkRow).where(ChunkRow.answer_id.in_(answers)))
            await connection.execute(delete(AnswerRow).where(AnswerRow.id.in_(answers)))
            await connection.execute(delete(InboundRow).where(InboundRow.id.in_(inbound)))
            await connection.execute(delete(UserRow).where(UserRow.user_id == user_id))
            await _forget_safety_events(connection, user_ref(user_id))
            await connection.execute(delete(IdeaRow).where(IdeaRow.user_id == user_id))
            await connection.execute(delete(FeedbackRow).where(FeedbackRow.user_id == user_id))
            for table in (SubscriptionRow, NudgeRow, CheckinRow, AssignmentRow):
                await connection.execute(delete(table).where(table.user_id == user_id))

    async def add_idea(self, user_id: str, topic: str, title: str) -> None:
        """An activity idea the user was given on `topic`."""
        row = {"user_id": user_id, "topic": topic_key(topic), "title": title[:TITLE_CHARS]}
        async with self._write() as connection:
            await connection.execute(insert(IdeaRow).values(**row, created_at=utc_now()))

    async def ideas(self, user_id: str, topic: str | None, limit: int = 30) -> list[str]:
        """The titles of the ideas the user already had on `topic` (None: on any), newest
        first."""
        query = select(IdeaRow.title).where(IdeaRow.user_id == user_id)
        if topic is not None:
            query = query.where(IdeaRow.topic == topic_key(topic))
        query = query.order_by(IdeaRow.id.desc()).limit(limit)
        async with self.engine.connect() as connection:
            return list((await connection.scalars(query)).all())

    async def last_topic(self, user_id: str) -> str | None:
        """The topic of the user's latest activity idea ("another idea" continues it)."""
        query = (
            select(IdeaRow.topic)
            .where(IdeaRow.user_id == user_id)
            .order_by(IdeaRow.id.desc())
            .limit(1)
        )
        async with self.engine.connect() as connection:
            topic: str | None = await connection.scalar(query)
        return topic

    async def add_feedback(
        self, user_id: str, before_inbound_id: int, rating: str, kinds: frozenset[str]
    ) -> str | None:
        """Rate the user's latest answer of one of `kinds` before message `before_inbound_id`
        (recorded without an answer when there is none); the kind of the answer rated."""
        latest = (
            select(AnswerRow.id, AnswerRow.kind)
            .join(InboundRow, AnswerRow.inbound_id == InboundRow.id)
            .where(
                InboundRow.user_id == user_id,
                InboundRow.id < _before(before_inbound_id),
                AnswerRow.kind.in_(list(kinds)),
            )
            .order_by(InboundRow.id.desc())
            .limit(1)
        )
        async with self._write() as connection:
            found = (await connection.execute(latest)).first()
            answer_id, kind = (found[0], found[1]) if found else (None, None)
            row = {"user_id": user_id, "answer_id": answer_id, "kind": kind, "rating": rating}
            await connection.execute(insert(FeedbackRow).values(**row, created_at=utc_now()))
        return kind

    async def awaiting_comment(
        self, user_id: str, before_inbound_id: int, question_kind: str, since: datetime
    ) -> int | None:
        """The user's 👎 still waiting for its comment: the latest rating is a 👎 given after
        `since`, with no comment yet, and the answer to the user's message just before
        `before_inbound_id` was the follow-up question (of kind `question_kind`). Its id."""
        previous = (
            select(AnswerRow.kind)
            .join(InboundRow, AnswerRow.inbound_id == InboundRow.id)
            .where(InboundRow.user_id == user_id, InboundRow.id < _before(before_inbound_id))
            .order_by(InboundRow.id.desc())
            .limit(1)
        )
        latest = (
            select(FeedbackRow.id, FeedbackRow.rating, FeedbackRow.comment, FeedbackRow.created_at)
            .where(FeedbackRow.user_id == user_id)
            .order_by(FeedbackRow.id.desc())
            .limit(1)
        )
        async with self.engine.connect() as connection:
            if await connection.scalar(previous) != question_kind:
                return None
            found = (await connection.execute(latest)).first()
        if found is None or found.rating != "down" or found.comment is not None:
            return None
        return found.id if aware(found.created_at) >= since else None

    async def add_feedback_comment(self, feedback_id: int, comment: str) -> None:
        """The parent's own words on what would have been better, kept with their 👎."""
        async with self._write() as connection:
            await connection.execute(
                update(FeedbackRow).where(FeedbackRow.id == feedback_id).values(comment=comment)
            )

    async def ratings(self, user_id: str) -> list[tuple[str, str, str | None]]:
        """The user's 👍/👎 on their answers, oldest first: (the channel's id of the message
        the rated answer answered, the rating, its comment)."""
        query = (
            select(InboundRow.message_id, FeedbackRow.rating, FeedbackRow.comment)
            .join(AnswerRow, AnswerRow.id == FeedbackRow.answer_id)
            .join(InboundRow, InboundRow.id == AnswerRow.inbound_id)
            .where(FeedbackRow.user_id == user_id)
            .order_by(FeedbackRow.id)
        )
        async with self.engine.connect() as connection:
            rows = await connection.execute(query)
            return [(message_id, rating, comment) for message_id, rating, comment in rows]

    async def finish(self, inbound_id: int) -> None:
        async with self._write() as connection:
            await connection.execute(_FINISH, {"inbound_id": inbound_id})

    async def add_safety_events(
        self, origin: Origin, events: Sequence[SafetyEvent], alerts: bool
    ) -> list[SafetyEvent]:
        """Record safety events (those a resumed job recorded already are skipped) and, with
        `alerts`, put the severe ones in the webhook's outbox. The events newly recorded."""
        user, now, added = user_ref(origin.user_id), utc_now(), []
        async with self._write() as connection:
            for event in events:
                values = {
                    "at": now,
                    "user_ref": user,
                    "channel": origin.channel,
                    "inbound_id": origin.inbound_id,
                    "stage": event.stage.value,
                    "source": event.source,
                    "category": event.category,
                    "severity": event.severity.value,
                    "rule": event.rule[:200],
                }
                event_id = await connection.scalar(self._insert_new_event, values)
                if event_id is None:
                    continue
                added.append(event)
                if alerts and event.severity is Severity.SEVERE:
                    body = alert_body(event, user, origin.channel, now)
                    await connection.execute(
                        insert(SafetyAlertRow),
                        {"event_id": event_id, "body": body, "attempts": 0, "next_at": now},
                    )
        return added

    async def claim_alerts(self, hold_s: float, limit: int = 20) -> list[Alert]:
        """Alerts due now, each claimed for `hold_s` seconds so that no other process sends
        it meanwhile (after a crash it is due again once the claim has run out)."""
        now = utc_now()
        free = or_(SafetyAlertRow.claimed_until.is_(None), SafetyAlertRow.claimed_until <= now)
        due = (
            select(SafetyAlertRow.id, SafetyAlertRow.body, SafetyAlertRow.attempts)
            .where(SafetyAlertRow.delivered_at.is_(None), SafetyAlertRow.next_at <= now, free)
            .order_by(SafetyAlertRow.id)
            .limit(limit)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(due)).all()
        claimed = []
        for alert_id, body, attempts in rows:
            async with self._write() as connection:
                result = await connection.execute(
                    update(SafetyAlertRow)
                    .where(SafetyAlertRow.id == alert_id, free)
                    .values(claimed_until=now + timedelta(seconds=hold_s))
                )
            if result.rowcount == 1:
                claimed.append(Alert(alert_id, body, attempts))
        return claimed

    async def alert_sent(self, alert: Alert) -> None:
        await self._update_alert(alert, delivered_at=utc_now(), error=None)
        async with self._write() as connection:  # owed by a forgotten user: now it is paid
            await _forget_safety_events(connection, FORGOTTEN)

    async def alert_failed(self, alert: Alert, retry_in_s: float, error: str) -> None:
        """Try again after `retry_in_s` seconds."""
        next_at = utc_now() + timedelta(seconds=retry_in_s)
        await self._update_alert(alert, next_at=next_at, error=error[:200])

    async def _update_alert(self, alert: Alert, **values: Any) -> None:
        async with self._write() as connection:
            await connection.execute(
                update(SafetyAlertRow)
                .where(SafetyAlertRow.id == alert.id)
                .values(attempts=alert.attempts + 1, claimed_until=None, **values)
            )

    async def record_delivery_status(
        self, provider_id: str, status: str, error_code: str | None
    ) -> None:
        """What the channel later reports about a sent chunk (delivered, read, failed...)."""
        async with self._write_session() as session:
            chunk = await session.scalar(
                select(ChunkRow).where(ChunkRow.provider_id == provider_id)
            )
            if chunk is None:
                await _template_status(session, provider_id, status, error_code)
                return
            old = _STATUS_RANK.get(chunk.delivery_status or "", -1)
            if status not in _STATUS_RANK or _STATUS_RANK[status] >= old:
                chunk.delivery_status = status
            if error_code:
                chunk.error = f"delivery error {error_code}"[:200]


async def _template_status(
    session: AsyncSession, provider_id: str, status: str, error_code: str | None
) -> None:
    """What Twilio says of a nudge's or check-in's template: delivered, read, or refused
    (63016…: then marked failed, never sent again in words)."""
    mine = NudgeRow.provider_id == provider_id
    if status in _FAILED or error_code:
        failed = {"outcome": "template_failed", "error": (error_code or status)[:64]}
        await session.execute(update(NudgeRow).where(mine).values(**failed))
        return
    old = await session.scalar(select(NudgeRow.delivery_status).where(mine))
    if _STATUS_RANK.get(status, -1) > _STATUS_RANK.get(old or "", -1):
        await session.execute(update(NudgeRow).where(mine).values(delivery_status=status))


# The hot statements, built once: SQLAlchemy then reuses their compiled form by key alone.
_INSERT_ANSWER = insert(AnswerRow).returning(AnswerRow.id)
_INSERT_CHUNK = insert(ChunkRow).returning(ChunkRow.id)
_FINISH = update(InboundRow).where(InboundRow.id == bindparam("inbound_id")).values(done=True)
_COMPLETE_ANSWER = (
    update(AnswerRow)
    .where(AnswerRow.id == bindparam("answer_id"))
    .values(text=bindparam("new_text"), kind=bindparam("new_kind"), completed_at=bindparam("now"))
)
_MARK_CHUNKS = (
    update(ChunkRow)
    .where(ChunkRow.id.in_(bindparam("chunk_ids", expanding=True)))
    .values(
        state=bindparam("new_state"),
        provider_id=bindparam("new_provider_id"),
        error=bindparam("new_error"),
        sent_at=bindparam("new_sent_at"),
    )
)
# One statement: the message, its answer if any and that answer's chunks, one row per chunk
# (or one row without answer or chunk columns).
_LOAD_JOB = (
    select(
        InboundRow.channel,
        InboundRow.user_id,
        InboundRow.text,
        InboundRow.message_id,
        InboundRow.media,
        InboundRow.received_at,
        InboundRow.bot_address,
        InboundRow.done,
        AnswerRow.id,
        AnswerRow.completed_at,
        AnswerRow.kind,
        ChunkRow.id,
        ChunkRow.seq,
        ChunkRow.is_hold,
        ChunkRow.body,
        ChunkRow.source,
        ChunkRow.state,
        ChunkRow.created_at,
        InboundRow.payload,
    )
    .outerjoin(AnswerRow, AnswerRow.inbound_id == InboundRow.id)
    .outerjoin(ChunkRow, ChunkRow.answer_id == AnswerRow.id)
    .where(InboundRow.id == bindparam("inbound_id"))
    .order_by(ChunkRow.seq)
)


def _inbound_values(incoming: Incoming) -> dict[str, Any]:
    return {
        "channel": incoming.channel,
        "message_id": incoming.message_id,
        "user_id": incoming.user_id,
        "bot_address": incoming.bot_address,
        "text": incoming.text,
        "media": [[item.url, item.content_type] for item in incoming.media],
        "payload": incoming.payload,
        "received_at": incoming.received_at,
        "done": False,
    }


def _of_user(column: Any) -> Any:
    return select(column).where(UserRow.user_id == bindparam("user_id")).scalar_subquery()


# Callers outside the job log pass sys.maxsize ("after everything stored") as `before`: bound
# as BIGINT, or PostgreSQL's driver refuses it as out of range for the INTEGER id column.
_BEFORE = bindparam("before", type_=BigInteger)


def _before(inbound_id: int) -> Any:
    """`inbound_id` as a bound BIGINT, like `_BEFORE`, for queries built per call."""
    return literal(inbound_id, BigInteger)


_USER = select(
    _of_user(UserRow.profile),
    _of_user(UserRow.opted_out),
    select(InboundRow.id)
    .where(InboundRow.user_id == bindparam("user_id"), InboundRow.id < _BEFORE)
    .limit(1)
    .scalar_subquery(),
    _of_user(UserRow.no_research),
)
_HISTORY = (
    select(InboundRow.text, AnswerRow.text)
    .join(AnswerRow, AnswerRow.inbound_id == InboundRow.id)
    .where(
        InboundRow.user_id == bindparam("user_id"),
        InboundRow.id < _BEFORE,
        InboundRow.id > func.coalesce(_of_user(UserRow.history_after), 0),
        AnswerRow.completed_at.is_not(None),
        AnswerRow.kind.in_(bindparam("kinds", expanding=True)),
    )
    .order_by(InboundRow.id.desc())
    .limit(bindparam("max_turns"))
)


async def _forget_safety_events(connection: AsyncConnection, pseudonym: str) -> None:
    """Erase a user's safety events, except those whose alert the operators have not had
    yet: a safeguarding concern still reaches them after *forget me*. Those lose every link to
    the user here and go once delivered."""
    events = select(SafetyEventRow.id).where(SafetyEventRow.user_ref == pseudonym)
    owed = select(SafetyAlertRow.event_id).where(
        SafetyAlertRow.event_id.in_(events), SafetyAlertRow.delivered_at.is_(None)
    )
    owed_ids = list((await connection.scalars(owed)).all())
    await connection.execute(
        update(SafetyEventRow)
        .where(SafetyEventRow.id.in_(owed_ids))
        .values(user_ref=FORGOTTEN, inbound_id=None)
    )
    done = SafetyAlertRow.event_id.in_(events), SafetyAlertRow.event_id.not_in(owed_ids)
    await connection.execute(delete(SafetyAlertRow).where(*done))
    await connection.execute(
        delete(SafetyEventRow).where(
            SafetyEventRow.id.in_(events), SafetyEventRow.id.not_in(owed_ids)
        )
    )
