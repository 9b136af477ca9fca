"""The experiment report on a seeded database: every figure worked out again here, from what
the seed made each user do, with the statistics written out by hand."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from scipy import stats as distributions

from sprout.core.store import Store
from sprout.report import report, stats
from sprout.report.figures import MIN_USERS, Figure
from sprout.report.output import to_csv, to_json, to_table
from tests.report_seed import EXPERIMENT, LATER, START, Person, seed

Expected = Callable[[Person], float | bool | None]
TEN_MINUTES, WEEK = timedelta(minutes=10), timedelta(days=7)


def _follow_up(person: Person) -> float | None:
    if not person.answers:
        return None
    asked = [answer.received_at for answer in person.answers]
    followed = [
        any(a.completed_at <= at <= a.completed_at + TEN_MINUTES for at in asked)
        for a in person.answers
    ]
    return sum(followed) / len(followed)


def _returned(now: datetime) -> Expected:
    def returned(person: Person) -> bool | None:
        own = sorted(person.own_messages)
        if not own or own[0] + WEEK > now:
            return None
        return any(at.date() > own[0].date() and at <= own[0] + WEEK for at in own)

    return returned


def _rate(rating: str) -> Expected:
    def rate(person: Person) -> float | None:
        if not person.answers:
            return None
        return sum(rating in a.ratings for a in person.answers) / len(person.answers)

    return rate


def _per_answer(measure: Callable[[list[str]], int]) -> Expected:
    def mean(person: Person) -> float | None:
        if not person.answers:
            return None
        return statistics.mean(measure(a.bodies) for a in person.answers)

    return mean


def expectations(now: datetime) -> dict[str, Expected]:
    return {
        "answers": lambda p: len(p.answers),
        "first_message_s": lambda p: (
            statistics.median(a.first_s for a in p.answers) if p.answers else None
        ),
        "messages_per_answer": _per_answer(len),
        "characters_per_answer": _per_answer(lambda bodies: sum(map(len, bodies))),
        "thumbs_up": _rate("up"),
        "thumbs_down": _rate("down"),
        "follow_up_10min": _follow_up,
        "return_7d": _returned(now),
        "nudge_tap": lambda p: p.tapped if p.nudged else None,
        "nudge_opt_out": lambda p: p.opted_out if p.nudged else None,
        "safety_event": lambda p: p.safety,
    }


def values(people: list[Person], expected: Expected, arm: str, channel: str) -> list[float]:
    chosen = [p for p in people if p.arm == arm and channel in {"all", p.channel}]
    found = [expected(p) for p in chosen]
    return [float(v) for v in found if v is not None]


def wilson(k: int, n: int) -> tuple[float, float]:
    z, p = 1.959963984540054, k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def newcomb(arm: list[float], control: list[float]) -> tuple[float, float]:
    (k1, n1), (k2, n2) = (int(sum(arm)), len(arm)), (int(sum(control)), len(control))
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    p1, p2 = k1 / n1, k2 / n2
    return (
        p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def welch(arm: list[float], control: list[float]) -> tuple[float, float, float]:
    """The interval and p-value of Welch's test, from the textbook formulas."""
    va, vc = statistics.variance(arm) / len(arm), statistics.variance(control) / len(control)
    se = math.sqrt(va + vc)
    df = (va + vc) ** 2 / (va**2 / (len(arm) - 1) + vc**2 / (len(control) - 1))
    difference = statistics.mean(arm) - statistics.mean(control)
    half = distributions.t.ppf(0.975, df) * se
    p_value = 2 * distributions.t.sf(abs(difference / se), df)
    return difference - half, difference + half, p_value


def _ranks_u(arm: list[float], control: list[float]) -> float:
    pooled = sorted(arm + control)
    rank = {v: (pooled.index(v) + 1 + len(pooled) - pooled[::-1].index(v)) / 2 for v in pooled}
    return sum(rank[v] for v in arm) - len(arm) * (len(arm) + 1) / 2


def _u_counts(n1: int, n2: int) -> list[int]:
    """How many orderings of n1 and n2 distinct values give each U (the exact distribution)."""
    if n1 == 0 or n2 == 0:
        return [1]
    shorter, longer = _u_counts(n1 - 1, n2), _u_counts(n1, n2 - 1)
    counts = [0] * (n1 * n2 + 1)
    for u, ways in enumerate(shorter):
        counts[u + n2] += ways
    for u, ways in enumerate(longer):
        counts[u] += ways
    return counts


def mann_whitney_p(arm: list[float], control: list[float]) -> float:
    """Two-sided: exact for a sample of 8 or fewer without ties (as scipy chooses), else the
    normal approximation with the continuity and tie corrections."""
    pooled = sorted(arm + control)
    n1, n2, n = len(arm), len(control), len(pooled)
    u = _ranks_u(arm, control)
    if min(n1, n2) <= 8 and len(set(pooled)) == n:
        counts = _u_counts(n1, n2)
        upper = max(u, n1 * n2 - u)
        return min(1.0, 2 * sum(counts[int(upper) :]) / sum(counts))
    ties = sum(c**3 - c for c in (pooled.count(v) for v in set(pooled)))
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    z = (abs(u - n1 * n2 / 2) - 0.5) / sigma
    return 2 * (1 - statistics.NormalDist().cdf(z))


def check_value(figure: Figure, mine: list[float]) -> None:
    assert figure.users == len(mine)
    if figure.summary == "share of users":
        assert figure.value == pytest.approx(sum(mine) / len(mine))
        assert (figure.low, figure.high) == pytest.approx(wilson(int(sum(mine)), len(mine)))
    elif figure.summary == "mean per user":
        assert figure.value == pytest.approx(statistics.mean(mine))
    else:
        assert figure.value == pytest.approx(statistics.median(mine))
        ninetieth = statistics.quantiles(mine, n=10, method="inclusive")[8]
        assert figure.p90 == pytest.approx(ninetieth)


def check_comparison(figure: Figure, mine: list[float], control: list[float]) -> None:
    assert figure.control_users == len(control)
    assert figure.difference is not None
    if figure.summary == "share of users":
        assert figure.difference == pytest.approx(
            sum(mine) / len(mine) - sum(control) / len(control)
        )
        bounds = (figure.difference_low, figure.difference_high)
        assert bounds == pytest.approx(newcomb(mine, control))
        assert figure.p_value is not None and 0 <= figure.p_value <= 1
    elif figure.summary == "mean per user":
        assert figure.difference == pytest.approx(statistics.mean(mine) - statistics.mean(control))
        low, high, p_value = welch(mine, control)
        assert (figure.difference_low, figure.difference_high) == pytest.approx((low, high))
        assert figure.p_value == pytest.approx(p_value)
    else:
        medians = statistics.median(mine) - statistics.median(control)
        assert figure.difference == pytest.approx(medians)
        assert figure.p_value == pytest.approx(mann_whitney_p(mine, control))
        assert figure.difference_low is not None and figure.difference_high is not None
        assert figure.difference_low <= medians <= figure.difference_high


async def test_every_figure_matches_the_seeded_users(store: Store) -> None:
    people = await seed(store)
    figures = await report(store, [EXPERIMENT], LATER)
    expected = expectations(LATER)
    assert {f.outcome for f in figures} == set(expected)
    assert {f.channel for f in figures} == {"all", "whatsapp", "telegram"}
    for figure in figures:
        outcome = expected[figure.outcome]
        mine = values(people, outcome, figure.arm, figure.channel)
        control = values(people, outcome, "standard", figure.channel)
        check_value(figure, mine)
        if figure.arm == "standard":
            assert figure.control and figure.difference is None
        else:
            check_comparison(figure, mine, control)
        too_few = min(len(mine), len(control)) < MIN_USERS
        assert bool(figure.warning) == too_few, figure


async def test_who_is_counted(store: Store) -> None:
    """ "No research", another experiment's members and messages outside the window are not."""
    people = await seed(store)
    figures = await report(store, [EXPERIMENT], LATER)
    members = {
        f.arm: f.users for f in figures if f.outcome == "safety_event" and f.channel == "all"
    }
    assert members == {"standard": 34, "quick": 28 + 1, "few": 6}
    answers = {
        f.arm: f.value * f.users
        for f in figures
        if f.outcome == "answers" and f.channel == "all" and f.value is not None
    }
    made = {arm: sum(len(p.answers) for p in people if p.arm == arm) for arm in answers}
    assert answers == pytest.approx(made)


async def test_a_user_whose_week_is_not_over_is_left_out_of_returns(store: Store) -> None:
    people = await seed(store)
    now = START + timedelta(days=12)
    figures = await report(store, [EXPERIMENT], now)
    returned = _returned(now)
    for figure in figures:
        if figure.outcome == "return_7d":
            assert figure.users == len(values(people, returned, figure.arm, figure.channel))
    quick = next(f for f in figures if f.outcome == "return_7d" and f.arm == "quick")
    assert 0 < quick.users < 29


async def test_the_same_data_gives_the_same_report(store: Store) -> None:
    await seed(store)
    first = await report(store, [EXPERIMENT], LATER)
    assert await report(store, [EXPERIMENT], LATER) == first


async def test_no_feedback_and_no_nudges_leave_their_outcomes_out(store: Store) -> None:
    await seed(store)
    # One member, one answer, nothing else.
    greetings = replace(EXPERIMENT, name="greetings", end=date(2027, 6, 30))
    figures = await report(store, [greetings], LATER)
    outcomes = {f.outcome for f in figures}
    assert not outcomes & {"thumbs_up", "thumbs_down", "nudge_tap", "nudge_opt_out"}
    assert "first_message_s" in outcomes
    (alone,) = [f for f in figures if f.outcome == "answers" and f.arm == "standard"]
    assert (alone.users, alone.value) == (1, 1.0)
    assert alone.warning == "only 1 user: too few to say anything"


async def test_csv_and_json_carry_the_same_figures_and_the_table_names_them(
    store: Store,
) -> None:
    await seed(store)
    figures = await report(store, [EXPERIMENT], LATER)
    from_json = json.loads(to_json(figures))
    from_csv = list(csv.DictReader(io.StringIO(to_csv(figures))))
    assert len(from_json) == len(from_csv) == len(figures)
    for row, line, figure in zip(from_json, from_csv, figures, strict=True):
        assert row == figure.as_dict()
        assert line["value"] == ("" if figure.value is None else str(figure.value))
        assert line["users"] == str(figure.users)
    table = to_table(figures)
    assert "Experiment hold_time — channel: all" in table
    assert "time to first message" in table and "(control)" in table
    assert f"fewer than {MIN_USERS} users" in table


def test_figures_without_spread_or_users_are_none_never_nan() -> None:
    nobody = stats.compare_shares([False] * 20, [False] * 25)
    assert (nobody.difference, nobody.p_value) == (0.0, 1.0)
    assert nobody.low is not None and nobody.low < 0 < (nobody.high or 0)
    same = stats.compare_means([2.0] * 5, [2.0] * 7)
    assert (same.difference, same.low, same.high, same.p_value) == (0.0, None, None, None)
    alone = stats.median([3.5])
    assert (alone.users, alone.value, alone.low, alone.high) == (1, 3.5, None, None)
    assert stats.compare_medians([], [1.0, 2.0]).difference is None
    assert stats.share([]) == stats.Estimate(0, None)


async def test_an_arm_gone_from_the_file_is_still_reported_after_the_others(store: Store) -> None:
    people = await seed(store)
    without_few = replace(EXPERIMENT, arms=EXPERIMENT.arms[:2])
    figures = await report(store, [without_few], LATER)
    arms = [f.arm for f in figures if f.outcome == "answers" and f.channel == "all"]
    assert arms == ["standard", "quick", "few"]
    few = next(f for f in figures if f.outcome == "safety_event" and f.arm == "few")
    assert few.users == sum(p.arm == "few" for p in people) and not few.control
