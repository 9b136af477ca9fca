"""When ideas are due: the family's own clock, across the changes of the clocks."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sprout.core.cadence import (
    EVERY_DAY,
    Cadence,
    in_quiet_hours,
    next_due,
    too_late,
    zone_of_number,
    zone_of_place,
)

LONDON = "Europe/London"
MORNINGS = Cadence(EVERY_DAY, time(9, 0))


def local(due: datetime, zone: str = LONDON) -> datetime:
    return due.astimezone(ZoneInfo(zone))


def test_a_daily_idea_comes_at_the_same_local_time_across_the_clocks_changing() -> None:
    # The UK's clocks go back on 2026-10-25 and forward on 2027-03-28.
    for start in (datetime(2026, 10, 23, 12, tzinfo=UTC), datetime(2027, 3, 26, 12, tzinfo=UTC)):
        due, dues = start, []
        for _ in range(5):
            due = next_due(MORNINGS, LONDON, due)
            dues.append(due)
        assert [local(d).time() for d in dues] == [time(9, 0)] * 5
        utc_hours = {d.hour for d in dues}
        assert utc_hours == {8, 9}, "the instant moves by an hour, the local time does not"


def test_the_next_one_is_strictly_later_and_on_a_chosen_day() -> None:
    saturdays = Cadence(frozenset({5}), time(10, 0))
    friday_evening = datetime(2026, 12, 4, 18, tzinfo=UTC)
    due = next_due(saturdays, LONDON, friday_evening)
    assert local(due) == datetime(2026, 12, 5, 10, tzinfo=ZoneInfo(LONDON))
    assert next_due(saturdays, LONDON, due) == due + timedelta(days=7)


def test_never_two_unprompted_messages_on_one_local_day() -> None:
    morning = datetime(2026, 12, 1, 7, tzinfo=UTC)
    assert local(next_due(MORNINGS, LONDON, morning)).date() == date(2026, 12, 1)
    skipped = next_due(MORNINGS, LONDON, morning, not_on=date(2026, 12, 1))
    assert local(skipped).date() == date(2026, 12, 2)


def test_madrid_mornings_are_madrid_time() -> None:
    due = next_due(MORNINGS, "Europe/Madrid", datetime(2026, 12, 1, 12, tzinfo=UTC))
    assert due == datetime(2026, 12, 2, 8, tzinfo=UTC)


def test_quiet_hours_are_from_eight_at_night_to_eight_in_the_morning() -> None:
    assert in_quiet_hours(time(20, 0)) and in_quiet_hours(time(7, 59))
    assert not in_quiet_hours(time(8, 0)) and not in_quiet_hours(time(19, 59))


def test_a_nudge_more_than_two_hours_late_is_dropped() -> None:
    due = datetime(2026, 12, 1, 9, tzinfo=UTC)
    assert not too_late(due, due + timedelta(hours=1, minutes=59))
    assert too_late(due, due + timedelta(hours=2, minutes=1))


def test_less_often_steps_down_to_once_a_week() -> None:
    three = MORNINGS.less_often()
    assert three.weekdays == frozenset({0, 2, 4}) and three.at == time(9, 0)
    assert three.less_often().weekdays == frozenset({0})
    assert three.less_often().less_often().weekdays == frozenset({0})


def test_the_time_zone_comes_from_the_phone_number_when_the_country_has_one() -> None:
    assert zone_of_number("whatsapp:+447700900123") == "Europe/London"
    assert zone_of_number("whatsapp:+34612345678") == "Europe/Madrid"
    assert zone_of_number("whatsapp:+447911123456") == "Europe/London"
    assert zone_of_number("whatsapp:+12025550123") == "America/New_York"
    assert zone_of_number("telegram:12345") is None


def test_a_place_needs_words_saying_the_family_is_there() -> None:
    assert zone_of_place("we're in Madrid") == "Europe/Madrid"
    assert zone_of_place("dan ni yn Abertawe") == "Europe/London"
    assert zone_of_place("my daughter Victoria loves Paris") is None
