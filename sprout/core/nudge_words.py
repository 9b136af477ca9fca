"""Asking for ideas by themselves, in plain words: "send me an idea every morning", "weekly
ideas on Saturdays", "ideas at 7pm please", "mándame una idea cada mañana", "syniad bob
bore" — and changing that later ("pause ideas", "less often", "stop ideas").

Deterministic on purpose: the same words always do the same thing, and a corpus of phrasings
in English, Spanish and Welsh tests them (`tests/unit/test_nudge_words.py`). A message asks
for ideas only when it names them (idea, activity, syniad…) and says how often or when, so
"what can we do every morning?" stays a question.
"""

from __future__ import annotations

import enum
import unicodedata
from dataclasses import dataclass
from datetime import time

import regex  # type: ignore[import-untyped,unused-ignore]

from sprout.core.cadence import EVERY_DAY, Cadence, zone_of_place


class Change(enum.Enum):
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    LESS_OFTEN = "less_often"


@dataclass(frozen=True)
class Subscribe:
    cadence: Cadence
    zone: str | None = None  # when the message says where the family is


def _words(*phrases: str) -> str:
    return "|".join(phrases)


_IDEAS = _words(
    r"ideas?", r"activit(?:y|ies)", r"nudges?", r"tips?", r"actividad(?:es)?", r"consejos?",
    r"syniad(?:au)?", r"weithgaredd(?:au)?", r"gweithgaredd(?:au)?", r"awgrym(?:iadau)?",
)  # fmt: skip
_CHANGES = {
    Change.STOP: _words(
        rf"stop (?:sending |the |my )*(?:{_IDEAS})", rf"no more (?:{_IDEAS})",
        rf"(?:para|parar|deja de enviar|dejar de enviar) (?:las |los |mis )?(?:{_IDEAS})",
        rf"no (?:mas|quiero) (?:{_IDEAS})", rf"stopio(?: r| y)? (?:{_IDEAS})",
        rf"dim (?:mwy o |rhagor o )?(?:{_IDEAS})",
    ),
    Change.PAUSE: _words(
        rf"pause (?:the |my )?(?:{_IDEAS})", rf"pausa(?:r)? (?:las |los |mis )?(?:{_IDEAS})",
        rf"oedi(?: r| y)? (?:{_IDEAS})", rf"hold (?:the |my )?(?:{_IDEAS})",
    ),
    Change.RESUME: _words(
        rf"(?:resume|restart|unpause|continue) (?:the |my )?(?:{_IDEAS})",
        rf"(?:reanudar|reanuda|seguir con) (?:las |los |mis )?(?:{_IDEAS})",
        rf"ailddechrau(?: r| y)? (?:{_IDEAS})",
    ),
    Change.LESS_OFTEN: _words(
        r"less often", r"not so often", rf"fewer (?:{_IDEAS})", r"menos a menudo",
        r"con menos frecuencia", rf"menos (?:{_IDEAS})", r"llai aml", rf"llai o (?:{_IDEAS})",
    ),
}  # fmt: skip
_CHANGE_PATTERNS = {
    change: regex.compile(rf"^(?:please |por favor |plis )?(?:{words})(?: please| por favor)?$")
    for change, words in _CHANGES.items()
}

_DAYS = [
    ("monday", "mon", "lunes", "llun"),
    ("tuesday", "tue", "martes", "mawrth"),
    ("wednesday", "wed", "miercoles", "mercher"),
    ("thursday", "thu", "jueves", "iau"),
    ("friday", "fri", "viernes", "gwener"),
    ("saturday", "sat", "sabado", "sadwrn"),
    ("sunday", "sun", "domingo", "sul"),
]
_DAY_NAMES = {
    name: index for index, names in enumerate(_DAYS) for name in names[:3] if len(name) > 3
}
_WELSH_DAYS = {names[3]: index for index, names in enumerate(_DAYS)}
_DAY = regex.compile(r"\b(?P<day>" + "|".join(_DAY_NAMES) + r")s?\b")
_WELSH_DAY = regex.compile(r"\b(?:dydd|ddydd) (?P<day>" + "|".join(_WELSH_DAYS) + r")\b")

_DAILY = regex.compile(
    r"\b(?:ev(?:e|a)?ry ?day|daily|each day|ev(?:e|a)?ry (?:morning|afternoon|evening|night)|a day"
    r"|todos los dias|cada dia|diari[oa]s?|cada (?:manana|tarde|noche)"
    r"|todas las (?:mananas|tardes|noches)|bob (?:dydd|bore|prynhawn|nos|noson)"
    r"|pob dydd|yn ddyddiol|dyddiol)\b"
)
_WEEKLY = regex.compile(
    r"\b(?:weekly|every week|once a week|a week|semanal(?:es)?|cada semana"
    r"|una vez (?:a|por) (?:la )?semana|wythnosol|bob wythnos|unwaith yr wythnos)\b"
)
_WEEKDAYS = regex.compile(r"\b(?:weekdays?|entre semana|dias laborables|yn ystod yr wythnos)\b")
_WEEKENDS = regex.compile(r"\b(?:weekends?|fines? de semana|penwythnos(?:au)?)\b")
_ASKING = regex.compile(
    r"\b(?:send|give|text|message|want|like|get|can i have|could i have|sign me up|subscribe"
    r"|manda|mandame|envia|enviame|envien|quiero|quisiera|me gustaria|dame"
    r"|anfon|anfonwch|anfona|hoffwn|hoffen|gaf i|ga i|rho|rhowch)\b"
)

# A clock time: "7pm", "7.30 p.m.", "19:00", "7yh" (Welsh pm), "a las 7 de la tarde".
_CLOCK = regex.compile(
    r"\b(?P<hour>2[0-3]|[01]?\d)(?:[:.h](?P<minute>[0-5]\d))?\s*"
    r"(?P<half>a\.?\s?m\.?|p\.?\s?m\.?|yh|yb|y h|y b|o r gloch|h\b)?"
    r"(?:\s+(?P<part>de la (?:manana|tarde|noche)|yr hwyr|y bore|y nos"
    r"|in the (?:morning|evening)))?"
)
_AT_HOUR = regex.compile(r"\b(?:at|a las|a la|am|erbyn)\s+(?=\d)")
_PART_OF_DAY = (
    (regex.compile(r"\b(?:morning|manana|mananas|bore)\b"), time(9, 0)),
    (regex.compile(r"\b(?:afternoon|prynhawn)\b"), time(15, 0)),
    (regex.compile(r"\b(?:evening|tarde|tardes|noswaith|gyda r nos)\b"), time(18, 0)),
    (regex.compile(r"\b(?:night|noche|noches|nos|noson)\b"), time(19, 30)),
)
_QUESTION = regex.compile(
    r"\?|^\W*(?:what|how|which|why|when|where|who|que|qué|como|cómo|cual|cuál|por que"
    r"|por qué|beth|sut|pa|pam|pryd|ble)\b",
    regex.IGNORECASE,
)
_MAX_UNASKED_WORDS = 8  # "weekly ideas on Saturdays": short, no verb needed
DEFAULT_TIME = time(9, 0)
WEEKLY_DAY = 5  # Saturday: a weekly idea for the weekend


def read(text: str) -> Subscribe | Change | None:
    """What `text` asks of the family's ideas, or None when it does not ask about them."""
    plain = _plain(text)
    for change, pattern in _CHANGE_PATTERNS.items():
        if pattern.match(plain):
            return change
    if not regex.search(rf"\b(?:{_IDEAS})\b", plain):
        return None
    weekdays = _weekdays(plain)
    at = _clock(plain)
    if weekdays is None and at is None:
        return None  # ideas, but no "how often" or "when": a question, not a request
    asking = bool(_ASKING.search(plain) or _AT_HOUR.search(plain))
    if not asking and (_QUESTION.search(text) or len(plain.split()) > _MAX_UNASKED_WORDS):
        return None  # "what ideas can we do every morning?" asks something else
    return Subscribe(Cadence(weekdays or EVERY_DAY, at or _part_of_day(plain)), zone_of_place(text))


_LANGUAGE_WORDS = {
    "es": frozenset(
        ["manda", "mandame", "envia", "enviame", "quiero", "quisiera", "dame", "cada", "todos",
         "todas", "los", "las", "dias", "dia", "manana", "tarde", "noche", "semana", "semanal",
         "semanales", "actividad", "actividades", "por", "favor", "pausa", "para", "parar",
         "reanudar", "menos", "mas", "idea", "ideas", "diarias", "diarios", "una", "a", "de"]
    ),
    "cy": frozenset(
        ["syniad", "syniadau", "anfon", "anfonwch", "hoffwn", "bob", "dydd", "bore", "nos",
         "wythnos", "wythnosol", "gweithgaredd", "gweithgareddau", "oedi", "stopio",
         "ailddechrau", "llai", "aml", "dim", "os", "gwelwch", "yn", "dda", "am", "yr", "hwyr",
         "ar", "ddydd", "gael"]
    ),
}  # fmt: skip


def language_of(text: str) -> str | None:
    """Spanish or Welsh when the message is mostly in their words, for the confirmation's
    language (English otherwise)."""
    words = _plain(text).split()
    for language, vocabulary in _LANGUAGE_WORDS.items():
        if sum(word in vocabulary for word in words) * 2 > len(words):
            return language
    return None


def _plain(text: str) -> str:
    """Lower case, no accents, apostrophes and punctuation as spaces, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    spaced = regex.sub(r"[’'`´]", " ", bare)
    spaced = regex.sub(r"[^\p{L}\p{N}:.\s]|(?<!\d)\.|\.(?!\d|\s?m\b)", " ", spaced)
    return " ".join(spaced.split())


def _weekdays(plain: str) -> frozenset[int] | None:
    named = {_DAY_NAMES[m["day"]] for m in _DAY.finditer(plain)}
    named |= {_WELSH_DAYS[m["day"]] for m in _WELSH_DAY.finditer(plain)}
    if _WEEKDAYS.search(plain):
        named |= set(range(5))
    if _WEEKENDS.search(plain):
        named |= {5, 6}
    if named:
        return frozenset(named)
    if _DAILY.search(plain):
        return EVERY_DAY
    if _WEEKLY.search(plain):
        return frozenset({WEEKLY_DAY})
    return None


def _clock(plain: str) -> time | None:
    for match in _CLOCK.finditer(plain):
        half, part = match["half"] or "", match["part"] or ""
        said_at = _AT_HOUR.search(plain[max(0, match.start() - 8) : match.start() + 1])
        if not (half or part or match["minute"] or said_at):
            continue  # a bare number ("2 ideas", "my son is 3") is no time
        hour = int(match["hour"])
        return time(_hour_of_day(hour, half + " " + part), int(match["minute"] or 0))
    return None


def _hour_of_day(hour: int, said: str) -> int:
    evening = regex.search(r"p\.?\s?m|yh|y h|tarde|noche|hwyr|y nos|evening", said)
    morning = regex.search(r"a\.?\s?m|yb|y b|manana|bore|morning", said)
    if evening and hour < 12:
        return hour + 12
    if morning:
        return 0 if hour == 12 else hour
    return hour + 12 if 1 <= hour <= 7 else hour  # "at 7": nobody means 7 in the morning's dark


def _part_of_day(plain: str) -> time:
    for pattern, at in _PART_OF_DAY:
        if pattern.search(plain):
            return at
    return DEFAULT_TIME
