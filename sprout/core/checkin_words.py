"""What a parent's own words say about an activity they were asked about: loved it, didn't
try it, found it tricky — in English, Spanish and Welsh, forgiving typos and stretched
letters ("loooved it") — and whether the words are a question instead (answered as one).

Deterministic on purpose, like `nudge_words`: the same reply is always read the same way,
and a corpus of replies tests it (`tests/unit/test_checkin_words.py`). Not trying is read
before difficulty and difficulty before delight: "didn't try, looks fun" was not tried, and
"fun but too hard for him" should make the next idea simpler.
"""

from __future__ import annotations

import unicodedata

import regex  # type: ignore[import-untyped,unused-ignore]

from sprout.core.checkins import REPLY


def _any(*phrases: str) -> regex.Pattern[str]:
    return regex.compile(rf"\b(?:{'|'.join(phrases)})\b", regex.VERSION1)


_UNTRIED = _any(
    r"did ?n[o']?t (?:get (?:a chance |round |around )?to |have time to )?(?:try|do|get)",
    r"didnt", r"not yet", r"have ?n[o']?t (?:tried|done|had)", r"havent", r"no time",
    r"too busy", r"forgot", r"maybe (?:later|tomorrow)", r"next time", r"not tried",
    r"no (?:lo|la) (?:probamos|hicimos|intentamos)", r"todavia no", r"aun no", r"no tuvimos tiempo",
    r"no pudimos", r"se me olvido", r"ddim wedi (?:trio|gwneud)", r"dim eto", r"heb (?:drio|wneud)",
    r"dim amser",
)  # fmt: skip
_TRICKY = _any(
    r"trick\w*", r"hard", r"difficult", r"struggl\w*", r"complicated", r"too (?:much|long|old)",
    r"did ?n[o']?t work", r"didnt work", r"not for (?:him|her|them|us)", r"lost interest",
    r"got bored", r"bored", r"frustrat\w*", r"mess(?:y)?", r"dificil", r"complicad[oa]",
    r"no funciono", r"se aburrio", r"anodd", r"cymhleth", r"ddim yn gweithio",
    r"not (?:good|great|fun|a hit|really)", r"no (?:le |les )?gusto", r"ddim yn (?:dda|hwyl)",
)  # fmt: skip
_LOVED = _any(
    r"lo+ve[ds]?(?: it)?", r"luv", r"great", r"fun", r"brilliant", r"amazing", r"enjoy\w*",
    r"awesome", r"fab\w*", r"lovely", r"perfect", r"a hit", r"went well", r"worked", r"good",
    r"encanto", r"encanta", r"genial", r"bien", r"divertid[oa]", r"muy bueno", r"gusto",
    r"wrth (?:ei|eu) (?:bodd|fodd|boddau)", r"gwych", r"da iawn", r"hwyl", r"ffantastig",
)  # fmt: skip
_HAPPY = regex.compile(r"[😍🥰😀😃😄😁😊❤💕💖👏🙌🎉👍🤩]")
_STRETCHED = regex.compile(r"(\p{L})\1{2,}")
_QUESTION_WORDS = (
    "how", "what", "why", "when", "where", "which", "who", "can", "could", "should", "is",
    "are", "do", "does", "will", "would", "any", "como", "que", "por que", "cuando", "donde",
    "cual", "puedo", "puede", "sut", "beth", "pam", "pryd", "ble", "oes", "allwch",
)  # fmt: skip


def _plain(text: str) -> str:
    """Lower case, no accents, straight apostrophes, stretched letters squeezed to two."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().replace("’", "'"))
    bare = "".join(char for char in decomposed if not unicodedata.combining(char))
    return _STRETCHED.sub(r"\1\1", bare)


def verdict(text: str) -> str:
    """untried, tricky, loved, or `REPLY` for words that say none of those."""
    plain = _plain(text)
    if _UNTRIED.search(plain):
        return "untried"
    if _TRICKY.search(plain):
        return "tricky"
    if _LOVED.search(plain) or _HAPPY.search(text):
        return "loved"
    return REPLY


def is_question(text: str) -> bool:
    """A question to answer rather than a reply to file: it asks (a question mark, or it
    opens with a question word) — "loved it! can we do it with paint?" too."""
    plain = _plain(text).strip()
    if "?" in plain or "¿" in text:
        return True
    first = regex.split(r"[\s,.!]+", plain, maxsplit=1)[0] if plain else ""
    return first in _QUESTION_WORDS
