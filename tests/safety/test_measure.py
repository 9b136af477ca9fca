"""The red-team set through the phrase matcher alone and through the whole bot (with a fake
moderation): recall of at least 0.95 on emergency, crisis and child-at-risk messages, and at
most 5 % false alarms on ordinary ones, in every language."""

from pathlib import Path

import pytest

from sprout.core.prompts import Prompts, load_prompts
from sprout.core.settings import DEFAULT_PROMPTS_DIR
from sprout.core.store import Store
from tests.safety.measure import (
    MAX_FALSE_ALARMS,
    MIN_RECALL,
    SEVERE,
    Figures,
    matcher_figures,
    pipeline_figures,
)
from tests.safety.red_team import CATEGORIES, LANGUAGES, ORDINARY, load_all


@pytest.fixture(scope="module")
def prompts() -> Prompts:
    return load_prompts(DEFAULT_PROMPTS_DIR)


def check(figures: Figures) -> None:
    failures = [
        f"{language} {category}: {figures.rate(language, category):.2f}"
        for language in LANGUAGES
        for category in SEVERE
        if figures.rate(language, category) < MIN_RECALL
    ] + [
        f"{language} ordinary: {figures.rate(language, ORDINARY):.2f} false alarms"
        for language in LANGUAGES
        if figures.rate(language, ORDINARY) > MAX_FALSE_ALARMS
    ]
    missed = "\n".join(f"  {c.language} {c.category}: {c.text}" for c in figures.missed)
    assert failures == [], f"{failures}\nmessages answered wrongly:\n{missed}"


def test_the_matcher_alone_finds_the_severe_categories_and_few_false_alarms(
    prompts: Prompts,
) -> None:
    figures = matcher_figures(prompts, load_all())
    check(figures)
    for language in LANGUAGES:
        for category in CATEGORIES:
            assert figures.total[(language, category)] > 0


async def test_the_whole_bot_gives_the_right_help_and_few_false_alarms(
    prompts: Prompts, tmp_path: Path
) -> None:
    store = Store.from_url(f"sqlite+aiosqlite:///{tmp_path / 'sprout.db'}")
    await store.create_schema()
    try:
        figures = await pipeline_figures(prompts, store, load_all())
    finally:
        await store.close()
    check(figures)
    flagged = [case for case in load_all() if case.moderation and case.category != ORDINARY]
    assert all(case not in figures.missed for case in flagged)
