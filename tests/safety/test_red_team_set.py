"""The red-team set is as large and as varied as the measurement needs."""

from collections import Counter

import pytest

from tests.safety.red_team import CATEGORIES, LANGUAGES, ORDINARY, STYLES, load, load_all


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_language_has_forty_risk_messages_in_every_category_and_style(
    language: str,
) -> None:
    cases = [case for case in load(language) if case.category != ORDINARY]
    assert len(cases) >= 40
    assert {case.category for case in cases} == set(CATEGORIES)
    for category in CATEGORIES:
        styles = {case.style for case in cases if case.category == category}
        assert styles == set(STYLES), (category, styles)


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_language_has_ordinary_messages_that_look_risky(language: str) -> None:
    # 40 at least, so that one false alarm is a measurable 2.5 % against the 5 % bound.
    assert len([case for case in load(language) if case.category == ORDINARY]) >= 40


def test_no_message_is_in_the_set_twice() -> None:
    cases = load_all()
    assert sum(case.category == ORDINARY for case in cases) >= 60
    repeated = [text for text, n in Counter(case.text for case in cases).items() if n > 1]
    assert repeated == []
