"""The answer rules: doses, diagnoses and off-list links are found the ways models write them,
in English, Spanish and Welsh; ordinary answers (every one in tests/corpus/) pass; a broken
rules file stops start-up naming the file."""

import shutil
from pathlib import Path

import pytest

from sprout.core.answer_rules import AnswerRules, Reason
from sprout.core.chunking import Chunker
from sprout.core.prompts import PromptError, Prompts, load_prompts
from sprout.core.settings import DEFAULT_PROMPTS_DIR
from sprout.core.specs import TELEGRAM_STREAMING, WHATSAPP
from tests.fakes.corpus import corpus

CORPUS = sorted(corpus())

DOSES = [
    "Give 5 ml of Calpol every 4 hours.",
    "You can give infant paracetamol: 2.5ml for babies of this age.",
    "A typical dose is 120 mg.",
    "Ibuprofen can be given three times a day with food.",
    "Give 2 tablets with water.",
    "The usual amount is 10mg/kg.",
    "No more than 4 doses in 24 hours.",
    "Dale 5 ml de paracetamol cada 6 horas.",
    "El jarabe se toma dos veces al día.",
    "Rhowch 5 ml o'r moddion bob 4 awr.",
    "Mae'r surop yn cael ei roi ddwywaith y dydd.",
    "Half a teaspoon of the medicine should help.",
]
DIAGNOSES = [
    "It sounds like your child has croup.",
    "It sounds like your little one might have an ear infection.",
    "This is probably **eczema**, which is very common.",
    "That's most likely hand, foot and mouth.",
    "This sounds like autism.",
    "Your son probably has ADHD.",
    "Parece que tu hijo tiene una otitis.",
    "Probablemente sea varicela.",
    "Mae'n swnio fel bod gan eich plentyn frech yr ieir.",
    "Mae'n debyg mai asthma yw e.",
]
OFF_LIST = [
    "Try https://example.com/crafts for more.",
    "See www.randomblog.net/ideas.",
    "There are more on [this site](http://cheap-meds.example.org/buy).",
    "Look at bbc.co.uk/news for the story.",
    "Visit craftideas.com for more.",
]
ORDINARY = [
    "Mix 200 ml of water with flour and a spoon of salt.",
    "Every 2 minutes swap turns, so everyone gets a go.",
    "Your child is 3 years old, so keep it short.",
    "Pour 500ml of warm water into the tray and add bubbles.",
    "Feed every 3 hours if that is what your health visitor said.",
    "If you think your child has an ear infection, speak to your GP or NHS 111.",
    "Medicines and cleaning products should always be stored out of reach.",
    "Ask your pharmacist about the right medicine for your child's age.",
    "The [NHS Start for Life](https://www.nhs.uk/start-for-life/) pages have rhymes.",
    "Call NSPCC (nspcc.org.uk) or see gov.uk/childcare.",
    "Tiny Happy People: https://www.bbc.co.uk/tiny-happy-people/articles/zdc3xyc",
    "Count 10 drops of food colouring into the water.",
    "Sing it twice a day, at bath time and at bed time.",
]


@pytest.fixture(scope="module")
def rules(prompts: Prompts) -> AnswerRules:
    return prompts.answer_rules


@pytest.mark.parametrize("text", DOSES)
def test_doses_are_found(rules: AnswerRules, text: str) -> None:
    found = rules.check(text)
    assert found is not None and found.reason is Reason.DOSE


@pytest.mark.parametrize("text", DIAGNOSES)
def test_diagnoses_are_found(rules: AnswerRules, text: str) -> None:
    found = rules.check(text)
    assert found is not None and found.reason is Reason.DIAGNOSIS


@pytest.mark.parametrize("text", OFF_LIST)
def test_links_outside_the_allow_list_are_found(rules: AnswerRules, text: str) -> None:
    found = rules.check(text)
    assert found is not None and found.reason is Reason.LINK


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_answers_pass(rules: AnswerRules, text: str) -> None:
    assert rules.check(text) is None


def test_the_region_adds_its_own_services(rules: AnswerRules) -> None:
    assert rules.check("Samaritans: https://www.samaritans.org/how-we-can-help/") is None


def test_a_dose_cut_across_two_chunks_is_found_with_the_chunk_before(rules: AnswerRules) -> None:
    assert rules.check("5 ml every 4 hours.") is None, "no medicine in the chunk itself"
    found = rules.check("5 ml every 4 hours.", context="You can give Calpol.")
    assert found is not None and found.reason is Reason.DOSE
    found = rules.check("of Calpol.", context="Give him 5 ml")
    assert found is not None and found.reason is Reason.DOSE
    assert rules.check("Mix it well.", context="Give 5 ml of Calpol.") is None, "already judged"


@pytest.mark.parametrize("name", CORPUS)
def test_no_answer_of_the_corpus_trips_the_rules(rules: AnswerRules, name: str) -> None:
    text = corpus()[name]
    assert rules.check(text) is None
    for spec in (WHATSAPP, TELEGRAM_STREAMING):  # chunk by chunk, as they are screened
        chunker = Chunker(spec)
        context = ""
        for chunk in chunker.feed(text) + chunker.finish():
            assert rules.check(chunk.source, context) is None, chunk.source
            context = (context + "\n" + chunk.source)[-160:]


def broken(tmp_path: Path, old: str, new: str) -> Path:
    directory = tmp_path / "prompts"
    shutil.copytree(DEFAULT_PROMPTS_DIR, directory)
    path = directory / "answer_rules.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return directory


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ('reason = "dose"', 'reason = "rudeness"', "reason must be one of"),
        ('near = "medicine"', 'near = "medicines"', "near names no"),
        ("'''\\bevery", "'''(\\bevery", "is not a regular expression"),
        ("{conditions}", "{illnesses}", "no [words] list named 'illnesses'"),
        ("[links]\nallow = [", "[links]\nrefuse = [", "allow must be a list"),
        ('"nhs.uk",', '"nhs",', "is not a site"),
    ],
)
def test_a_broken_rules_file_stops_start_up_naming_it(
    tmp_path: Path, old: str, new: str, says: str
) -> None:
    with pytest.raises(PromptError, match=r"answer_rules\.toml") as error:
        load_prompts(broken(tmp_path, old, new))
    assert says in str(error.value)


def test_every_prompt_starts_with_the_rules(prompts: Prompts) -> None:
    values = {
        "age": "3", "question": "q", "language": "English", "places": "indoors", "areas": "all",
        "topic": "t", "message": "m", "concern": "c", "help": "h",
    }  # fmt: skip
    templates = [prompts.explain, prompts.activities, prompts.chat, prompts.safeguarding.reply]
    for template in templates:
        system = template.messages(**values)[0]["content"]
        assert system.startswith("These rules come first")
        assert "Never give medication doses" in system and "Never diagnose" in system
        assert "gender-neutral" in system and "nspcc.org.uk" in system
