"""A family opting in to ideas by themselves, and changing or ending that, in plain words.

The words are read by `nudge_words`; this turns them into a subscription and the fixed text
that confirms it, saying when ideas will come in the family's own time.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sprout.core.cadence import EVERY_DAY, UK_TIME, Cadence, next_due, zone_of_number, zone_of_place
from sprout.core.checkins import Checkins
from sprout.core.nudge_words import DEFAULT_TIME, Change, Subscribe, language_of, read
from sprout.core.prompts import Prompts
from sprout.core.subscriptions import Subscription, Subscriptions

_MOVED_MAX_WORDS = 6
Reply = tuple[str, dict[str, str], str | None]  # a fixed text's key, values and language


class Programme:
    def __init__(
        self, subscriptions: Subscriptions, prompts: Prompts, every_day: frozenset[int] = EVERY_DAY
    ) -> None:
        self.subscriptions = subscriptions
        self._prompts = prompts
        # The days "every day" means for this family (an experiment's arm may choose fewer).
        self._every_day = every_day

    def instead_of_every_day(self, days: frozenset[int]) -> Programme:
        return Programme(self.subscriptions, self._prompts, days)

    async def answer(
        self, user: str, channel: str, text: str, now: datetime, language: str | None
    ) -> Reply | None:
        """The reply to a message about the family's ideas, or None when it is about
        something else. `now`: when the message came, so tests and restarts agree."""
        asked = read(text)
        if asked is None:
            return await self._moved(user, text, now, language)
        language = language or language_of(text)
        current = await self.subscriptions.get(user)
        if isinstance(asked, Subscribe):
            zone = asked.zone or (current.zone if current else None) or _zone_for(user)
            asking = Subscription(user, channel, asked.cadence, zone, None)
            return await self._start(asking, now, language)
        if current is None and asked is Change.STOP:  # the check-ins are all that comes
            await Checkins(self.subscriptions.store).stop(user, channel, now)
            return "checkins_stopped", {}, language
        if current is None:
            return "nudges_none", {}, language
        changed = await self._change(current, asked, now)
        if changed is None:
            return "nudges_stopped" if asked is Change.STOP else "nudges_paused", {}, language
        return "nudges_on", {"when": self.when(changed, language)}, language

    async def every_morning(
        self, user: str, channel: str, now: datetime, language: str | None
    ) -> Reply:
        """A tap on the button offering an idea every morning."""
        current = await self.subscriptions.get(user)
        zone = current.zone if current else _zone_for(user)
        morning = Cadence(EVERY_DAY, DEFAULT_TIME)
        return await self._start(Subscription(user, channel, morning, zone, None), now, language)

    async def _start(
        self, subscription: Subscription, now: datetime, language: str | None = None
    ) -> Reply:
        cadence, zone = subscription.cadence, subscription.zone
        if cadence.daily:
            cadence = replace(cadence, weekdays=self._every_day)
            subscription = replace(subscription, cadence=cadence)
        started = subscription.moved_on(next_due(cadence, zone, now))
        await self.subscriptions.save(started)
        return "nudges_on", {"when": self.when(started, language)}, language

    async def subscribed(self, user: str) -> bool:
        return await self.subscriptions.get(user) is not None

    async def _moved(
        self, user: str, text: str, now: datetime, language: str | None
    ) -> Reply | None:
        """ "We're in Madrid" on its own, from a subscribed family: their ideas keep their
        local time there. (In a longer message it is only part of a question.)"""
        zone = zone_of_place(text) if len(text.split()) <= _MOVED_MAX_WORDS else None
        current = await self.subscriptions.get(user) if zone else None
        if zone is None or current is None:
            return None
        language = language or language_of(text)
        due = None if current.paused else next_due(current.cadence, zone, now)
        moved = replace(current, zone=zone, next_due=due)
        await self.subscriptions.save(moved)
        return "nudges_on", {"when": self.when(moved, language)}, language

    async def _change(
        self, current: Subscription, change: Change, now: datetime
    ) -> Subscription | None:
        """Carry out the change; the subscription it leaves running, if any."""
        match change:
            case Change.STOP:
                await self.subscriptions.end(current.user_id)
                return None
            case Change.PAUSE:
                await self.subscriptions.save(current.moved_on(None))
                return None
            case Change.RESUME:
                cadence = current.cadence
            case Change.LESS_OFTEN:
                cadence = current.cadence.less_often()
        due = next_due(cadence, current.zone, now, not_on=current.last_local_date)
        changed = Subscription(
            current.user_id, current.channel, cadence, current.zone, due, current.last_local_date
        )
        await self.subscriptions.save(changed)
        return changed

    async def end(self, user: str) -> None:
        """`stop`: no more unprompted messages at all, regular ideas or check-ins."""
        await self.subscriptions.end(user)
        await Checkins(self.subscriptions.store).cancel(user)

    async def setting(self, user: str, language: str | None) -> str:
        """The `settings` line about ideas by themselves."""
        current = await self.subscriptions.get(user)
        if current is None:
            return self._prompts.text("nudges_setting_off", language)
        if current.paused:
            return self._prompts.text("nudges_setting_paused", language)
        return self._prompts.text("nudges_setting", language, when=self.when(current, language))

    def when(self, subscription: Subscription, language: str | None = None) -> str:
        """ "every day at 09:00 (London time)", "on Saturdays at 10:00 (Madrid time)"."""
        text = self._prompts.text
        days = _days(subscription.cadence, text("day_names", language).split(","))
        often = (
            text("every_day", language)
            if subscription.cadence.daily
            else text("on_days", language, days=_joined(days, text("and", language)))
        )
        place = subscription.zone.rsplit("/", 1)[-1].replace("_", " ")
        clock = subscription.cadence.at.strftime("%H:%M")
        return text("when", language, often=often, time=clock, place=place)


def _zone_for(user: str) -> str:
    return zone_of_number(user) or UK_TIME


def _days(cadence: Cadence, names: list[str]) -> list[str]:
    return [names[day].strip() for day in sorted(cadence.weekdays)]


def _joined(items: list[str], and_word: str) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {and_word} {items[-1]}"
