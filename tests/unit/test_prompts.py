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


def test_safeguarding_responses_carry_the_regions_numbers_in_each_language() -> None:
    safeguarding = load_prompts(DEFAULT_PROMPTS_DIR).safeguarding
    assert safeguarding.region == "uk"
    assert "999" in safeguarding.response("emergency")
    assert "NHS 111" in safeguarding.response("urgent_health")
    assert "0808 800 5000" in safeguarding.response("child_at_risk", "es")
    assert "116 123" in safeguarding.response("crisis", "cy")
    english, welsh = (safeguarding.response("domestic_abuse", lang) for lang in ("en", "cy"))
    assert "0808 2000 247" in english and "0808 80 10 800" in english
    assert "Byw Heb Ofn" in welsh, "the region file says it differently in Welsh"
    assert safeguarding.response("crisis", "fr") == safeguarding.response("crisis")


def test_a_missing_region_file_stops_start_up_naming_it(prompts_copy: Path) -> None:
    with pytest.raises(PromptError, match=r"regions/fr\.toml"):
        load_prompts(prompts_copy, region="fr")
    with pytest.raises(PromptError, match="SPROUT_REGION"):
        load_prompts(prompts_copy, region="../texts/en")


def test_another_region_is_a_file(prompts_copy: Path) -> None:
    uk = (prompts_copy / "regions" / "uk.toml").read_text()
    (prompts_copy / "regions" / "ie.toml").write_text(
        uk.replace('emergency = "999"', 'emergency = "112"')
    )
    assert "112" in load_prompts(prompts_copy, region="ie").safeguarding.response("emergency")


def test_a_region_without_a_service_or_a_response_with_an_unknown_number_is_refused(
    prompts_copy: Path,
) -> None:
    region = prompts_copy / "regions" / "uk.toml"
    region.write_text(region.read_text().replace("crisis =", "crises =", 1))
    with pytest.raises(PromptError, match="services"):
        load_prompts(prompts_copy)
    region.write_text(region.read_text().replace("crises =", "crisis =", 1))
    safety = prompts_copy / "safety" / "es.toml"
    safety.write_text(safety.read_text().replace("{emergency}", "{emergencia}", 1))
    with pytest.raises(PromptError, match="emergencia"):
        load_prompts(prompts_copy)


def test_a_phrase_the_matcher_cannot_read_stops_start_up(prompts_copy: Path) -> None:
    safety = prompts_copy / "safety" / "cy.toml"
    safety.write_text(safety.read_text().replace('"llipa"', '"llipa ..."', 1))
    with pytest.raises(PromptError, match="llipa"):
        load_prompts(prompts_copy)
    safety.write_text(safety.read_text().replace("[crisis]", "[crisiss]", 1))
    with pytest.raises(PromptError, match="crisis"):
        load_prompts(prompts_copy)
