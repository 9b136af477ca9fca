"""Where the families who asked for ideas by themselves are kept, and what became of each
unprompted message.

A subscription's `next_due` is indexed: finding the ones due reads only those, however many
families are subscribed. Claiming one moves its `next_due` on only if no one else did first,
so with several workers each due nudge is claimed once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time

from sqlalchemy import delete, insert, select, update

from sprout.core.cadence import Cadence
from sprout.core.store import Store, aware
from sprout.core.tables import NudgeRow, SubscriptionRow, utc_now


@dataclass(frozen=True)
class Subscription:
    user_id: str
    channel: str
    cadence: Cadence
    zone: str
    next_due: datetime | None  # None: paused
    last_local_date: date | None = None  # the last local day an unprompted message went

    @property
    def paused(self) -> bool:
        return self.next_due is None

    def moved_on(self, next_due: datetime | None, sent_on: date | None = None) -> Subscription:
        return replace(self, next_due=next_due, last_local_date=sent_on or self.last_local_date)


class Subscriptions:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, user_id: str) -> Subscription | None:
        query = select(SubscriptionRow).where(SubscriptionRow.user_id == user_id)
        async with self.store.engine.connect() as connection:
            row = (await connection.execute(query)).one_or_none()
        return None if row is None else _subscription(row._mapping)

    async def save(self, subscription: Subscription) -> None:
        """Create or replace the user's subscription."""
        values = _values(subscription)
        mine = SubscriptionRow.user_id == subscription.user_id
        async with self.store.writing() as connection:
            await connection.execute(delete(SubscriptionRow).where(mine))
            await connection.execute(insert(SubscriptionRow).values(created_at=utc_now(), **values))

    async def end(self, user_id: str) -> bool:
        """Stop the user's ideas, recorded as an opt-out for researchers; whether there were
        any."""
        mine = SubscriptionRow.user_id == user_id
        now = utc_now()
        async with self.store.writing() as connection:
            channel = await connection.scalar(select(SubscriptionRow.channel).where(mine))
            if channel is None:
                return False
            await connection.execute(delete(SubscriptionRow).where(mine))
            opted_out = {
                "user_id": user_id, "kind": "nudge", "channel": channel, "due_at": now,
                "outcome": "opted_out", "recorded_at": now,
            }  # fmt: skip
            await connection.execute(insert(NudgeRow).values(**opted_out))
        return True

    async def due(self, now: datetime, limit: int) -> list[Subscription]:
        """The subscriptions due by `now`, oldest due first (the index on next_due)."""
        query = (
            select(SubscriptionRow)
            .where(SubscriptionRow.next_due <= now)
            .order_by(SubscriptionRow.next_due)
            .limit(limit)
        )
        async with self.store.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [_subscription(row._mapping) for row in rows]

    async def claim(self, due: Subscription, moved_on: Subscription) -> bool:
        """Move a due subscription on, only if it is still as `due` found it: whoever moves it
        first owns this nudge."""
        statement = (
            update(SubscriptionRow)
            .where(SubscriptionRow.user_id == due.user_id, SubscriptionRow.next_due == due.next_due)
            .values(
                next_due=moved_on.next_due,
                last_local_date=_day(moved_on.last_local_date),
                updated_at=utc_now(),
            )
        )
        async with self.store.writing() as connection:
            result = await connection.execute(statement)
        return bool(result.rowcount)

    async def record(
        self,
        subscription: Subscription,
        outcome: str,
        inbound_id: int | None = None,
        provider_id: str | None = None,
        at: datetime | None = None,
    ) -> None:
        """What became of the nudge due at the subscription's `next_due` (`provider_id`: the
        template message sent instead, outside the 24-hour window)."""
        assert subscription.next_due is not None
        row = {
            "user_id": subscription.user_id,
            "kind": "nudge",
            "channel": subscription.channel,
            "due_at": subscription.next_due,
            "outcome": outcome,
            "inbound_id": inbound_id,
            "provider_id": provider_id,
            "recorded_at": at or utc_now(),
        }
        async with self.store.writing() as connection:
            await connection.execute(insert(NudgeRow).values(**row))

    async def outcomes(self, user_id: str) -> list[str]:
        query = select(NudgeRow.outcome).where(NudgeRow.user_id == user_id).order_by(NudgeRow.id)
        async with self.store.engine.connect() as connection:
            return list((await connection.scalars(query)).all())


def _values(subscription: Subscription) -> dict[str, object]:
    cadence = subscription.cadence
    return {
        "user_id": subscription.user_id,
        "channel": subscription.channel,
        "weekdays": ",".join(str(day) for day in sorted(cadence.weekdays)),
        "at_local": cadence.at.strftime("%H:%M"),
        "zone": subscription.zone,
        "next_due": subscription.next_due,
        "last_local_date": _day(subscription.last_local_date),
        "updated_at": utc_now(),
    }


def _subscription(row: object) -> Subscription:
    values = dict(row)  # type: ignore[call-overload]
    weekdays = frozenset(int(day) for day in values["weekdays"].split(","))
    last = values["last_local_date"]
    return Subscription(
        user_id=values["user_id"],
        channel=values["channel"],
        cadence=Cadence(weekdays, time.fromisoformat(values["at_local"])),
        zone=values["zone"],
        next_due=aware(values["next_due"]) if values["next_due"] else None,
        last_local_date=date.fromisoformat(last) if last else None,
    )


def _day(day: date | None) -> str | None:
    return day.isoformat() if day else None
