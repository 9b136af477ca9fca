"""Safeguarding: the categories of risk a message can show, and the offline phrase matcher that
finds them in what a parent writes.

The matcher needs no model, so every backend gets it, local ones included. Its lists live in
`prompts/safety/<lang>.toml`, one list per category, editable without touching code. A phrase
is a few words; the text is matched forgivingly: case, accents and apostrophes do not count,
a word may be misspelled by one letter (two in a long word) as long as it starts with the
right letter, words may be run together or split apart ("notbreathing", "post natal"), and
each language's `[spellings]` rewrite text-speak first ("u" → "you", "kms" → "kill myself").
In a phrase, `a|b` is either word, `word*` any word starting so, `{38-42}` any whole number in
that range, and `...` up to five words of anything (`...8`: up to eight).
"""

from __future__ import annotations

import enum
import itertools
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import regex
from rapidfuzz import process
from rapidfuzz.distance import OSA


class Category(enum.Enum):
    """In order of precedence: when a message shows several, the help for the first leads."""

    EMERGENCY = "emergency"
    CHILD_AT_RISK = "child_at_risk"
    CRISIS = "crisis"
    DOMESTIC_ABUSE = "domestic_abuse"
    URGENT_HEALTH = "urgent_health"


@dataclass(frozen=True)
class Concern:
    """What the screen found in a message: its categories (in order of precedence) and the
    language the words were recognised in, when the matcher found them."""

    categories: tuple[Category, ...]
    language: str | None = None
    source: str = "matcher"  # or "moderation"
    flags: frozenset[str] = frozenset()  # the moderation categories, when moderation found it

    @property
    def primary(self) -> Category:
        return self.categories[0]


def ordered(categories: Iterable[Category]) -> tuple[Category, ...]:
    found = set(categories)
    return tuple(category for category in Category if category in found)


@dataclass(frozen=True)
class PhraseList:
    """One language's phrases per category, and how its text-speak is written out."""

    language: str
    phrases: Mapping[Category, tuple[str, ...]]
    spellings: Mapping[str, str] = field(default_factory=dict)
    # Real words one typo away from a phrase's word ("cooking" and "choking"): never taken for
    # a misspelling of it.
    real_words: frozenset[str] = frozenset()
    # English joins a word across its apostrophe ("can't" → "cant"); Welsh splits it off
    # ("babi'n" → "babi n"), where "'n" and "'r" are words of their own.
    split_apostrophes: bool = False


class PhraseError(ValueError):
    """A phrase the matcher cannot read."""


GAP_WORDS = 5  # what `...` stands for, unless it says (`...8`)
_APOSTROPHES = re.compile(r"['’‘`´]")
_MARKS = regex.compile(r"\p{M}+")
_GAP = re.compile(r"^\.\.\.(\d*)$")
_NOT_WORD = re.compile(r"[^\w]+|_+")
_DIGIT_LETTER = re.compile(r"(?<=\d)(?=[^\W\d])|(?<=[^\W\d])(?=\d)")
_RANGE = re.compile(r"^\{(\d+)-(\d+)\}$")


def fold(text: str) -> str:
    """Lower case, no accents, words apart from numbers ("8wks" → "8 wks")."""
    plain = _MARKS.sub("", unicodedata.normalize("NFKD", text.casefold()))
    return _DIGIT_LETTER.sub(" ", plain)


def words_of(folded: str, split_apostrophes: bool = False) -> str:
    """A folded text as words one space apart: apostrophes join a word or split it, anything
    else that is not a letter or a digit is a space."""
    plain = _APOSTROPHES.sub(" " if split_apostrophes else "", folded)
    return " ".join(_NOT_WORD.sub(" ", plain).split())


def normalise(text: str, split_apostrophes: bool = False) -> str:
    return words_of(fold(text), split_apostrophes)


def _allowed_edits(length: int) -> int:
    # Short words must be exact: one letter turns "hit" into "hot" and "shake" into "share".
    return 0 if length <= 5 else 1 if length <= 8 else 2


def close(term: str, word: str) -> bool:
    """Whether `word` is `term`, give or take a typo (first letter right); in a short word
    only two letters swapped ("cpoe")."""
    if term == word:
        return True
    if not word or term[0] != word[0]:
        return False
    allowed = _allowed_edits(len(term))
    if not allowed:
        return len(term) >= 4 and sorted(term) == sorted(word) and OSA.distance(term, word) == 1
    return OSA.distance(term, word, score_cutoff=allowed) <= allowed


def starts(prefix: str, word: str) -> bool:
    """Whether `word` starts with `prefix`, give or take a typo in it."""
    if word.startswith(prefix):
        return True
    allowed = _allowed_edits(len(prefix))
    if not allowed or not word or prefix[0] != word[0]:
        return False
    size = len(prefix)
    return any(
        OSA.distance(prefix, word[:cut], score_cutoff=allowed) <= allowed
        for cut in (size - 1, size, size + 1)
        if cut <= len(word)
    )


@dataclass(frozen=True)
class _Term:
    text: str = ""  # a word, or a prefix
    prefix: bool = False
    low: int | None = None  # a number range
    high: int | None = None
    gap: int = 0  # up to this many words of anything
    # Two words run together ("notbreathing"): where the second starts. The first must be
    # exact, the second may have its typo.
    run_on: int | None = None

    def matches(self, word: str, exactly: bool = False) -> bool:
        if self.low is not None and self.high is not None:
            return word.isdigit() and self.low <= int(word) <= self.high
        if exactly:
            return word.startswith(self.text) if self.prefix else word == self.text
        if self.run_on is not None:
            cut = self.run_on
            return word[:cut] == self.text[:cut] and close(self.text[cut:], word[cut:])
        return starts(self.text, word) if self.prefix else close(self.text, word)

    @property
    def plain(self) -> bool:
        return not (self.prefix or self.gap or self.low is not None)


Normal = Callable[[str], str]


def _terms(raw: str, phrase: str, normal: Normal) -> list[_Term]:
    """One part of a phrase as terms: most parts are one word, but an apostrophe split off
    ("mae'n" → "mae n") makes two."""
    if gap := _GAP.match(raw):
        return [_Term(gap=int(gap[1] or GAP_WORDS))]
    if found := _RANGE.match(raw):
        low, high = int(found[1]), int(found[2])
        if low > high:
            raise PhraseError(f"range {raw} in {phrase!r} runs backwards")
        return [_Term(low=low, high=high)]
    prefix = raw.endswith("*")
    words = normal(raw.removesuffix("*")).split()
    if not words or "*" in raw.removesuffix("*"):
        raise PhraseError(f"{raw!r} in {phrase!r} is not a word, a word*, {{a-b}} or ...")
    return [_Term(word, prefix=prefix and at == len(words) - 1) for at, word in enumerate(words)]


Option = tuple[_Term, ...]  # one way to fill a slot: a word, or two ("mae'n" → "mae n")


@dataclass(frozen=True)
class _Phrase:
    slots: tuple[tuple[Option, ...], ...]  # each slot's alternatives (`hit|beat`)
    category: Category


def _phrase(raw: str, category: Category, normal: Normal) -> _Phrase:
    slots = tuple(
        tuple(tuple(_terms(option, raw, normal)) for option in part.split("|"))
        for part in raw.split()
    )
    if not slots or any(o[0].gap for o in slots[0]) or any(o[-1].gap for o in slots[-1]):
        raise PhraseError(f"{raw!r}: a phrase starts and ends with a word")
    return _Phrase(slots, category)


_CACHE_SIZE = 50_000


class _Vocabulary:
    """Terms, looked up by the words they can be; a word's terms are cached (most words come
    again and again)."""

    def __init__(self, terms: Iterable[_Term], real: frozenset[str]) -> None:
        self._real = real
        self._plain: dict[str, list[_Term]] = {}  # by first letter
        self._prefixes: dict[str, list[_Term]] = {}
        self._numbers: list[_Term] = []
        for term in terms:
            if term.low is not None:
                self._numbers.append(term)
            else:
                (self._prefixes if term.prefix else self._plain).setdefault(
                    term.text[0], []
                ).append(term)
        self._texts = {letter: [t.text for t in terms] for letter, terms in self._plain.items()}
        self._cache: dict[str, tuple[_Term, ...]] = {}

    def is_(self, term: _Term, word: str) -> bool:
        # A real word is only ever itself, never someone's typo of another.
        return term.matches(word, exactly=word in self._real)

    def of(self, word: str) -> tuple[_Term, ...]:
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        plain = self._plain.get(word[0], [])
        found = [
            plain[index]
            for _, _, index in process.extract(
                word, self._texts.get(word[0], []), scorer=OSA.distance, score_cutoff=2, limit=None
            )
            if self.is_(plain[index], word)
        ]
        found += [term for term in self._prefixes.get(word[0], []) if self.is_(term, word)]
        if word.isdigit():
            found += [term for term in self._numbers if term.matches(word)]
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[word] = terms = tuple(found)
        return terms


@dataclass(frozen=True)
class _Start:
    """Where a phrase goes on once its first word (or first two, run together) is found, and
    the words that must be somewhere in the text for it to be worth following: its last
    (looking for a phrase that starts with "he" after every "he" costs more than this)."""

    at: _At
    needs: frozenset[_Term]


def _joined(first: Option, second: Option) -> _Term | None:
    """The word `first`'s last term and `second`'s first make when run together."""
    a, b = first[-1], second[0]
    return _run_on(a, b) if a.plain and b.plain else None


def _run_on(a: _Term, b: _Term) -> _Term:
    return _Term(a.text + b.text, run_on=len(a.text))


def _needs(phrase: _Phrase) -> frozenset[_Term]:
    slots = phrase.slots
    if len(slots) == 1:
        return frozenset()
    needs: set[_Term | None] = {option[-1] for option in slots[-1]}
    needs |= {_joined(option[:-1], option[-1:]) for option in slots[-1] if len(option) > 1}
    needs |= {_joined(a, b) for a in slots[-2] for b in slots[-1]}
    return frozenset(term for term in needs if term is not None)


class _Language:
    """One language's phrases, indexed by the words they can start with."""

    def __init__(self, phrases: PhraseList) -> None:
        self.language = phrases.language
        self._split = phrases.split_apostrophes
        self._spellings = {
            self._normal(key): self._normal(value) for key, value in phrases.spellings.items()
        }
        keys = sorted(self._spellings, key=len, reverse=True)
        alternatives = "|".join(map(re.escape, keys))
        self._spelling = re.compile(rf"\b(?:{alternatives})\b") if keys else None
        self._starts: dict[_Term, list[_Start]] = {}
        for category, raws in phrases.phrases.items():
            for raw in raws:
                self._index(_phrase(raw, category, self._normal))
        needed = {term for starts in self._starts.values() for s in starts for term in s.needs}
        real = frozenset(self._normal(word) for word in phrases.real_words)
        self._vocabulary = _Vocabulary({*self._starts, *needed}, real)

    def _index(self, phrase: _Phrase) -> None:
        needs = _needs(phrase)
        for option in phrase.slots[0]:
            self._start(option[0], _At(phrase, 0, option, 1), needs)
            if len(option) > 1:
                self._start(_joined(option[:1], option[1:]), _At(phrase, 0, option, 2), needs)
            elif len(phrase.slots) > 1:
                for second in phrase.slots[1]:
                    self._start(_joined(option, second), _At(phrase, 1, second, 1), needs)

    def _start(self, term: _Term | None, at: _At, needs: frozenset[_Term]) -> None:
        if term is not None:
            self._starts.setdefault(term, []).append(_Start(at, needs))

    def _normal(self, text: str) -> str:
        return normalise(text, self._split)

    def words(self, folded: str) -> list[str]:
        """A folded text's words, its text-speak written out."""
        plain = words_of(folded, self._split)
        if self._spelling is not None:
            plain = self._spelling.sub(lambda hit: self._spellings[hit[0]], plain)
        return plain.split()

    def categories(self, words: list[str]) -> list[Category]:
        """The category of every phrase found in `words` (once per phrase)."""
        # Where a phrase can start: at a word, or at two run together ("brea thing") that
        # stand for one word of a phrase (never for two: that is just the words).
        spans = [(self._vocabulary.of(word), at + 1) for at, word in enumerate(words)]
        spans += [
            (tuple(t for t in self._vocabulary.of(a + b) if t.plain and t.run_on is None), at + 2)
            for at, (a, b) in enumerate(itertools.pairwise(words))
        ]
        present = {term for terms, _ in spans for term in terms}
        found: list[Category] = []
        seen: set[int] = set()
        for terms, after in spans:
            for start in (start for term in terms for start in self._starts.get(term, ())):
                phrase = start.at.phrase
                if id(phrase) in seen or (start.needs and start.needs.isdisjoint(present)):
                    continue
                if self._option(start.at, words, after):
                    seen.add(id(phrase))
                    found.append(phrase.category)
        return found

    def _slots(self, phrase: _Phrase, slot: int, words: list[str], j: int) -> bool:
        """Whether the phrase's slots from `slot` on match words from j on."""
        if slot == len(phrase.slots):
            return True
        return any(
            self._option(_At(phrase, slot, option, 0), words, j) for option in phrase.slots[slot]
        )

    def _option(self, at: _At, words: list[str], j: int) -> bool:
        """Whether the rest of one option of a slot, then the slots after it, match words
        from j on: a gap skips words, a word may be written as two ("post natal") and two as
        one ("notbreathing")."""
        if at.term == len(at.option):
            return self._slots(at.phrase, at.slot + 1, words, j)
        term, following = at.option[at.term], at.next()
        if term.gap:
            return any(self._option(following, words, j + skip) for skip in range(term.gap + 1))
        if j >= len(words):
            return False
        if self._vocabulary.is_(term, words[j]) and self._option(following, words, j + 1):
            return True
        if not term.plain:
            return False
        two = words[j] + words[j + 1] if j + 1 < len(words) else ""
        if two and close(term.text, two) and self._option(following, words, j + 2):
            return True
        return any(
            self._vocabulary.is_(joined, words[j]) and self._option(rest, words, j + 1)
            for joined, rest in self._run_on(at)
        )

    def _run_on(self, at: _At) -> list[tuple[_Term, _At]]:
        """The words this term makes with the next one, run together, and where the phrase
        goes on after both: the next term of the option, or of one of the next slot's."""
        term = at.option[at.term]
        if at.term + 1 < len(at.option):
            after = at.option[at.term + 1]
            return [(_run_on(term, after), at.next().next())] if after.plain else []
        if at.slot + 1 == len(at.phrase.slots):
            return []
        return [
            (_run_on(term, option[0]), _At(at.phrase, at.slot + 1, option, 1))
            for option in at.phrase.slots[at.slot + 1]
            if option[0].plain
        ]


class _At(NamedTuple):
    """A place in a phrase being matched: a term of one option of a slot."""

    phrase: _Phrase
    slot: int
    option: Option
    term: int

    def next(self) -> _At:
        return _At(self.phrase, self.slot, self.option, self.term + 1)


class PhraseMatcher:
    """Finds the categories of risk in a message with every language's phrases."""

    def __init__(self, lists: Iterable[PhraseList]) -> None:
        self._languages = [_Language(phrases) for phrases in lists]

    def match(self, text: str) -> Concern | None:
        """The categories found, and the language whose phrases found the most; None for a
        message that shows none."""
        hits: Counter[str] = Counter()
        categories: set[Category] = set()
        folded = fold(text)
        for language in self._languages:
            found = language.categories(language.words(folded))
            categories.update(found)
            hits[language.language] += len(found)
        if not categories:
            return None
        return Concern(ordered(categories), hits.most_common(1)[0][0])
