import shutil
from pathlib import Path

import pytest

from sprout.core.prompts import PromptError, load_prompts
from sprout.core.settings import DEFAULT_PROMPTS_DIR


@pytest.fixture
def prompts_copy(tmp_path: Path) -> Path:
    target = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, target)
    return target


def test_shipped_prompts_load_and_render_the_users_words() -> None:
    prompts = load_prompts(DEFAULT_PROMPTS_DIR)
    messages = prompts.activities.messages(
        age="3–4 years old",
        places="indoors or outdoors",
        areas=prompts.areas_description(),
        topic="Dinosaurs {and} Dragons",
        language="English",
    )
    assert "Dinosaurs {and} Dragons" in messages[1]["content"]
    for area in ("Communication and Language", "Expressive Arts and Design", "Mathematics"):
        assert area in messages[0]["content"]
    assert "Conversations" in messages[0]["content"]
    assert "Games and crafts" in messages[0]["content"]
    assert (
        "3 years old"
        in prompts.explain.messages(age="3 years old", question="q", language="Welsh")[0]["content"]
    )


def test_a_missing_file_stops_start_up_naming_it(prompts_copy: Path) -> None:
    (prompts_copy / "explain.toml").unlink()
    with pytest.raises(PromptError, match=r"explain\.toml"):
        load_prompts(prompts_copy)


def test_an_unknown_placeholder_is_refused(prompts_copy: Path) -> None:
    path = prompts_copy / "explain.toml"
    path.write_text(path.read_text().replace("{question}", "{questoin}"))
    with pytest.raises(PromptError, match="questoin"):
        load_prompts(prompts_copy)


def test_broken_toml_is_refused(prompts_copy: Path) -> None:
    (prompts_copy / "texts" / "en.toml").write_text('help = "unclosed')
    with pytest.raises(PromptError, match="not valid TOML"):
        load_prompts(prompts_copy)


def test_a_missing_fixed_text_is_refused(prompts_copy: Path) -> None:
    path = prompts_copy / "texts" / "en.toml"
    path.write_text(path.read_text().replace("apology =", "apologies ="))
    with pytest.raises(PromptError, match="apology"):
        load_prompts(prompts_copy)


def test_every_language_has_every_fixed_text() -> None:
    prompts = load_prompts(DEFAULT_PROMPTS_DIR)
    assert {"en", "es", "cy"} <= set(prompts.texts)
    for texts in prompts.texts.values():
        assert set(texts) == set(prompts.texts["en"])
    assert prompts.text("help", "es").startswith("Hola")
    assert prompts.text("help", "fr") == prompts.text("help"), "unknown languages get English"
