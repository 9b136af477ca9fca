"""When a family's ideas are due: the days and local time they chose, in their time zone.

Times are kept as the family's wall-clock time and turned into an instant for each day on its
own, so a nudge at 09:00 stays at 09:00 when the clocks change. Nothing unprompted goes
between 20:00 and 08:00 unless the family chose a time there themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
import regex  # type: ignore[import-untyped,unused-ignore]
from phonenumbers import timezone as phone_timezones

UK_TIME = "Europe/London"
EVERY_DAY = frozenset(range(7))  # Monday = 0, as datetime.weekday()
QUIET_FROM, QUIET_UNTIL = time(20, 0), time(8, 0)
LATEST_LATE = timedelta(hours=2)  # later than this after downtime: dropped, not sent


@dataclass(frozen=True)
class Cadence:
    """On which weekdays, at what local time."""

    weekdays: frozenset[int]
    at: time

    @property
    def daily(self) -> bool:
        return self.weekdays == EVERY_DAY

    def less_often(self) -> Cadence:
        """Every day becomes three days a week; three or more become one; one stays one."""
        if self.daily:
            return replace(self, weekdays=frozenset({0, 2, 4}))
        if len(self.weekdays) > 1:
            return replace(self, weekdays=frozenset({min(self.weekdays)}))
        return self


def in_quiet_hours(at: time) -> bool:
    return at >= QUIET_FROM or at < QUIET_UNTIL


def next_due(cadence: Cadence, zone: str, after: datetime, not_on: date | None = None) -> datetime:
    """The first instant strictly after `after` (aware) when a nudge is due, in UTC. `not_on`:
    a local date that already had its unprompted message (never two in a day)."""
    tz = ZoneInfo(zone)
    local_day = after.astimezone(tz).date()
    for offset in range(8):
        day = local_day + timedelta(days=offset)
        if day.weekday() not in cadence.weekdays or day == not_on:
            continue
        due = datetime.combine(day, cadence.at, tzinfo=tz).astimezone(UTC)
        if due > after:
            return due
    return next_due(cadence, zone, after + timedelta(days=7), not_on)  # only when not_on blocked


def too_late(due: datetime, now: datetime) -> bool:
    """A nudge this late (the service was down) is dropped rather than sent in a burst."""
    return now - due > LATEST_LATE


# A country's main zone, where its numbers may also belong to islands an hour apart.
_MAIN_ZONE = {"ES": "Europe/Madrid", "PT": "Europe/Lisbon", "GB": "Europe/London"}


def zone_of_number(user_id: str) -> str | None:
    """The time zone of a phone number: its own when the number tells one, else its country's
    when all the country's zones keep the same time (a UK mobile may be London, Jersey or the
    Isle of Man) or the country has a main one (Spain); None when it spans several (the US)."""
    try:
        number = phonenumbers.parse(user_id.removeprefix("whatsapp:"), None)
    except phonenumbers.NumberParseException:
        return None
    zones = [z for z in phone_timezones.time_zones_for_number(number) if _known(z)]
    zones = zones or [
        z for z in phone_timezones.time_zones_for_geographical_number(number) if _known(z)
    ]
    if not zones:
        return None
    if _same_clock(zones):
        return UK_TIME if UK_TIME in zones else zones[0]
    main = _MAIN_ZONE.get(phonenumbers.region_code_for_number(number) or "")
    return main if main in zones else None


def _same_clock(zones: list[str]) -> bool:
    """Whether the zones show the same time in winter and in summer."""
    instants = (datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 7, 15, tzinfo=UTC))
    return all(len({at.astimezone(ZoneInfo(z)).utcoffset() for z in zones}) == 1 for at in instants)


# Places people name that are not the last part of a time zone's name.
_PLACES = {
    **dict.fromkeys(
        ["uk", "england", "wales", "cymru", "scotland", "britain", "great britain",
         "united kingdom", "northern ireland", "cardiff", "caerdydd", "manchester",
         "birmingham", "glasgow", "edinburgh", "bristol", "leeds", "swansea", "abertawe"],
        "Europe/London",
    ),
    **dict.fromkeys(
        ["spain", "españa", "espana", "barcelona", "valencia", "sevilla", "seville",
         "bilbao", "málaga", "malaga", "zaragoza", "sbaen"],
        "Europe/Madrid",
    ),
    **dict.fromkeys(["canarias", "canary islands", "tenerife", "gran canaria"], "Atlantic/Canary"),
    **dict.fromkeys(["ireland", "iwerddon", "irlanda"], "Europe/Dublin"),
    **dict.fromkeys(["france", "francia", "ffrainc"], "Europe/Paris"),
    **dict.fromkeys(["portugal"], "Europe/Lisbon"),
    **dict.fromkeys(["méxico", "mexico", "ciudad de méxico"], "America/Mexico_City"),
}  # fmt: skip
# "We're in …", "estamos en …", "rydyn ni yng …": where a family says they are.
_WHERE = regex.compile(
    r"\b(?:we(?:'|’)?re|we are|we live|i(?:'|’)?m|i am|i live|based|living|live"
    r"|estamos|vivimos|vivo|estoy"
    r"|rydyn ni|ry(?:'|’)?n ni|dan ni|dyn ni|rwy(?:'|’)?n byw|dw i(?:'|’)?n byw|rydw i)"
    r"\s+(?:\p{L}+\s+)?(?:in|en|yn|yng|ym)\s+(?P<place>\p{L}+(?:[ -]\p{L}+){0,2})",
    regex.IGNORECASE,
)


def zone_of_place(text: str) -> str | None:
    """The time zone of the place a family says they are in ("we're in Madrid", "estamos en
    Sevilla"): a country or city from the short list above, else a city that names an IANA
    zone. Only after such words, so a child called Victoria is not a time zone."""
    match = _WHERE.search(text)
    if match is None:
        return None
    words = match["place"].casefold().replace("-", " ").split()
    for size in range(len(words), 0, -1):
        place = " ".join(words[:size])
        zone = _PLACES.get(place) or _CITIES.get(place.replace(" ", "_"))
        if zone is not None:
            return zone
    return None


def _known(zone: str) -> bool:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _cities() -> dict[str, str]:
    """City names from the IANA database ("madrid" -> "Europe/Madrid"), continents only."""
    continents = ("Europe/", "America/", "Africa/", "Asia/", "Australia/", "Atlantic/", "Pacific/")
    zones = sorted(z for z in available_timezones() if z.startswith(continents))
    return {zone.rsplit("/", 1)[1].casefold(): zone for zone in zones}


_CITIES = _cities()
