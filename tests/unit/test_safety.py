"""The offline phrase matcher: forgiving of how people type, strict about what a phrase says."""

import pytest

from sprout.core.safety import Category, PhraseError, PhraseList, PhraseMatcher, normalise

EMERGENCY, CRISIS = Category.EMERGENCY, Category.CRISIS


def matcher(*phrases: str, category: Category = EMERGENCY, **options: object) -> PhraseMatcher:
    spellings = options.get("spellings", {})
    real = options.get("real_words", frozenset())
    split = bool(options.get("split", False))
    assert isinstance(spellings, dict) and isinstance(real, frozenset)
    return PhraseMatcher([PhraseList("en", {category: phrases}, spellings, real, split)])


def found(m: PhraseMatcher, text: str) -> tuple[Category, ...]:
    concern = m.match(text)
    return concern.categories if concern else ()


def test_normalising_drops_case_accents_apostrophes_and_splits_numbers() -> None:
    assert normalise("My BABY isn't breathing!!") == "my baby isnt breathing"
    assert normalise("bebé de 6 SEMANAS, 38,5°") == "bebe de 6 semanas 38 5"
    assert normalise("lo is 8wks") == "lo is 8 wks"
    assert normalise("mae'r babi'n", split_apostrophes=True) == "mae r babi n"


@pytest.mark.parametrize(
    "text",
    [
        "he is not breathing",
        "NOT BREATHING",
        "not breatheing",  # a letter too many
        "not breahting",  # two swapped
        "notbreathing",  # run together
        "not brea thing",  # split
    ],
)
def test_a_phrase_is_found_however_it_is_typed(text: str) -> None:
    assert found(matcher("not breathing"), text) == (EMERGENCY,)


@pytest.mark.parametrize("text", ["now breathing", "not sreathing", "nowbreathing"])
def test_short_words_and_first_letters_must_be_right(text: str) -> None:
    assert found(matcher("not breathing"), text) == ()


def test_a_real_word_is_never_taken_for_a_typo() -> None:
    assert found(matcher("is choking"), "my husband is cooking") == (EMERGENCY,)
    careful = matcher("is choking", real_words=frozenset({"cooking"}))
    assert found(careful, "my husband is cooking") == ()
    assert found(careful, "he is chocking") == (EMERGENCY,)


def test_prefixes_numbers_gaps_and_alternatives() -> None:
    m = matcher("swallow* ...6 batter*|magnet*", "{0-12} week* ...10 temp*|fever ...6 {38-43}")
    assert found(m, "he swalowed one of those little button batteries") == (EMERGENCY,)
    assert found(m, "she swallowed a magnet") == (EMERGENCY,)
    assert found(m, "swallowed water") == ()
    assert found(m, "my 6 week old has a temperature of 38.2") == (EMERGENCY,)
    assert found(m, "my 14 week old has a temperature of 38.2") == ()
    assert found(m, "my 6 week old has a temperature of 37.9") == ()
    assert found(m, "born at 38 weeks, now 6 weeks old") == ()
    assert found(m, "swallowed " + "word " * 7 + "battery") == (), "a gap has a limit"


def test_spellings_write_text_speak_out_first() -> None:
    spellings = {"kms": "kill myself", "cnt": "cant"}
    m = matcher("kill myself", "cant cope", category=CRISIS, spellings=spellings)
    assert found(m, "wanna kms tbh") == (CRISIS,)
    assert found(m, "i cnt cope") == (CRISIS,)


def test_multi_word_choices_are_written_with_hyphens() -> None:
    m = matcher("cant cope ...4 anymore|any-more", category=CRISIS)
    assert found(m, "I can't cope any more") == (CRISIS,)
    assert found(m, "I can't cope anymore") == (CRISIS,)


def test_welsh_splits_words_at_the_apostrophe() -> None:
    m = matcher("troi'n las", split=True)
    assert found(m, "mae e wedi troi'n las") == (EMERGENCY,)
    assert found(m, "mae e wedi troi n las") == (EMERGENCY,)


def test_several_categories_come_in_order_and_the_language_that_found_them() -> None:
    m = PhraseMatcher(
        [
            PhraseList("en", {CRISIS: ("cant cope",), Category.DOMESTIC_ABUSE: ("hits me",)}),
            PhraseList("es", {CRISIS: ("no puedo mas",)}),
        ]
    )
    concern = m.match("he hits me and I can't cope")
    assert concern is not None
    assert concern.categories == (CRISIS, Category.DOMESTIC_ABUSE)
    assert concern.primary is CRISIS and concern.language == "en"
    spanish = m.match("ya no puedo más")
    assert spanish is not None and spanish.language == "es"


@pytest.mark.parametrize("phrase", ["... breathing", "not ...", "{40-38} degrees", "a*b c"])
def test_a_phrase_the_matcher_cannot_read_is_refused(phrase: str) -> None:
    with pytest.raises(PhraseError):
        matcher(phrase)
