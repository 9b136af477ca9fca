"""Asking for ideas by themselves, in the words parents use (English, Spanish, Welsh), and
the messages that must not be read as asking."""

from datetime import time

import pytest

from sprout.core.cadence import EVERY_DAY
from sprout.core.nudge_words import Change, Subscribe, language_of, read

DAILY, WEEKDAYS, WEEKENDS = EVERY_DAY, frozenset(range(5)), frozenset({5, 6})
SAT, MON_THU = frozenset({5}), frozenset({0, 3})

SUBSCRIBING = [
    # English
    ("Send me an idea every morning", DAILY, time(9, 0)),
    ("send me an idea every morning pls", DAILY, time(9, 0)),
    ("weekly ideas on Saturdays", SAT, time(9, 0)),
    ("Weekly ideas please", SAT, time(9, 0)),
    ("ideas at 7pm please", DAILY, time(19, 0)),
    ("Ideas at 7 please", DAILY, time(19, 0)),
    ("can you send me activities every day at 6.30pm?", DAILY, time(18, 30)),
    ("I'd like a daily idea at 10am", DAILY, time(10, 0)),
    ("send me ideas on Mondays and Thursdays at 4pm", MON_THU, time(16, 0)),
    ("daily activity ideas at 19:00 thanks", DAILY, time(19, 0)),
    ("text me a new activity every evening", DAILY, time(18, 0)),
    ("ideas on weekends please", WEEKENDS, time(9, 0)),
    ("send me ideas on weekdays at 8:15 a.m.", WEEKDAYS, time(8, 15)),
    ("Give me a tip every afternoon", DAILY, time(15, 0)),
    ("sign me up for weekly activities", SAT, time(9, 0)),
    ("an idea every day at 9pm pls 🙏", DAILY, time(21, 0)),
    ("snd me ideas evry day", DAILY, time(9, 0)),  # typos in the verb and "every": still daily
    # Spanish
    ("mándame una idea cada mañana", DAILY, time(9, 0)),
    ("Mandame una idea cada manana", DAILY, time(9, 0)),
    ("ideas semanales los sábados", SAT, time(9, 0)),
    ("ideas a las 7 de la tarde por favor", DAILY, time(19, 0)),
    ("envíame actividades todos los días a las 19:30", DAILY, time(19, 30)),
    ("quiero una actividad cada semana", SAT, time(9, 0)),
    ("me gustaría recibir ideas los fines de semana", WEEKENDS, time(9, 0)),
    ("ideas diarias a las 8 de la mañana", DAILY, time(8, 0)),
    # Welsh
    ("anfonwch syniad bob bore", DAILY, time(9, 0)),
    ("syniadau wythnosol ar ddydd Sadwrn", SAT, time(9, 0)),
    ("syniadau am 7yh os gwelwch yn dda", DAILY, time(19, 0)),
    ("hoffwn gael gweithgaredd bob dydd am 6 yr hwyr", DAILY, time(18, 0)),
    ("syniad bob dydd Llun", frozenset({0}), time(9, 0)),
]


@pytest.mark.parametrize(("text", "weekdays", "at"), SUBSCRIBING)
def test_asking_for_ideas_subscribes(text: str, weekdays: frozenset[int], at: time) -> None:
    asked = read(text)
    assert isinstance(asked, Subscribe), text
    assert asked.cadence.weekdays == weekdays and asked.cadence.at == at


@pytest.mark.parametrize(
    ("text", "zone"),
    [
        ("send me an idea every morning, we're in Madrid", "Europe/Madrid"),
        ("ideas a las 7 de la tarde, estamos en Sevilla", "Europe/Madrid"),
        ("weekly ideas please, we live in Cardiff", "Europe/London"),
        ("daily ideas at 9am, I'm in New York", "America/New_York"),
        ("send me ideas every day please", None),
    ],
)
def test_a_place_said_with_it_gives_the_time_zone(text: str, zone: str | None) -> None:
    asked = read(text)
    assert isinstance(asked, Subscribe) and asked.zone == zone


@pytest.mark.parametrize(
    ("text", "change"),
    [
        ("stop ideas", Change.STOP),
        ("Stop sending ideas please", Change.STOP),
        ("no more ideas", Change.STOP),
        ("no más ideas", Change.STOP),
        ("para las ideas", Change.STOP),
        ("stopio syniadau", Change.STOP),
        ("pause ideas", Change.PAUSE),
        ("Pausa las ideas", Change.PAUSE),
        ("oedi syniadau", Change.PAUSE),
        ("resume ideas", Change.RESUME),
        ("reanudar ideas", Change.RESUME),
        ("less often", Change.LESS_OFTEN),
        ("Less often please", Change.LESS_OFTEN),
        ("menos a menudo", Change.LESS_OFTEN),
        ("llai aml", Change.LESS_OFTEN),
    ],
)
def test_changing_the_ideas(text: str, change: Change) -> None:
    assert read(text) is change


@pytest.mark.parametrize(
    "text",
    [
        "Activities dinosaurs",
        "what ideas can we do every morning?",
        "How do I get her to sleep at 7pm?",
        "my son is 3 and loves dinosaurs",
        "he wakes up every morning at 5am",
        "we do 2 activities a day at nursery and she is tired by the evening, normal?",
        "Explain why the moon changes shape",
        "any ideas for a rainy day?",
        "¿qué actividades hacemos cada mañana?",
        "stop",
        "pause",
        "ideas",
        "great idea thanks",
        "stop hitting ideas",
    ],
)
def test_other_messages_are_not_about_the_ideas(text: str) -> None:
    assert read(text) is None


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("mándame una idea cada mañana", "es"),
        ("ideas a las 7 de la tarde por favor", "es"),
        ("anfonwch syniad bob bore", "cy"),
        ("syniadau wythnosol ar ddydd Sadwrn", "cy"),
        ("send me an idea every morning", None),
        ("weekly ideas on Saturdays", None),
    ],
)
def test_the_confirmation_is_in_the_language_asked_in(text: str, language: str | None) -> None:
    assert language_of(text) == language
