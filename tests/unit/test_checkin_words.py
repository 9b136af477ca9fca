"""Parents' own replies to "How did it go?", as they write them: typos, stretched letters,
emoji, Spanish and Welsh, and questions that deserve an answer rather than a filing."""

import pytest

from sprout.core.checkin_words import is_question, verdict

REPLIES = {
    "She loooved it!!": "loved",
    "loved it": "loved",
    "luv it 😍": "loved",
    "😍😍": "loved",
    "it was great fun thank u": "loved",
    "went well thanks": "loved",
    "le encantó!": "loved",
    "muy divertido": "loved",
    "Roedd e wrth ei fodd": "loved",
    "gwych diolch": "loved",
    "didnt get round to it": "untried",
    "didn't try it yet sorry": "untried",
    "Not yet, maybe tomorrow": "untried",
    "havent had time": "untried",
    "no time this week, looks fun tho": "untried",
    "No lo probamos todavía": "untried",
    "dim eto": "untried",
    "Too hard for him tbh": "tricky",
    "fun but too hard for a 2 year old": "tricky",
    "he got bored after 2 mins": "tricky",
    "bit tricky": "tricky",
    "not good": "tricky",
    "fue difícil": "tricky",
    "roedd yn anodd": "tricky",
    "we did it": "reply",
    "ok": "reply",
    "she built a tower instead": "reply",
}


@pytest.mark.parametrize(("text", "expected"), REPLIES.items())
def test_each_reply_is_read_as_the_parent_meant_it(text: str, expected: str) -> None:
    assert verdict(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "how do I make it easier?",
        "can we do it with paint instead",
        "loved it! can we do it with paint?",
        "¿se puede hacer fuera?",
        "what else can we do with dinosaurs",
        "sut mae gwneud hyn yn haws",
    ],
)
def test_a_question_is_a_question(text: str) -> None:
    assert is_question(text)


@pytest.mark.parametrize("text", ["loved it", "didnt try", "too hard", "we did it", "😍"])
def test_a_reply_is_not_a_question(text: str) -> None:
    assert not is_question(text)
