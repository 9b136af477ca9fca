"""What a message asks for, decided from its words, forgivingly (case, punctuation, plurals)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import regex

from sprout.core.buttons import ANOTHER, DOWN, MORE, UP, VERDICTS

# A command word, then any mix of spaces and light punctuation ("Explain: ", "activities - ").
_COMMAND = regex.compile(
    r"^[\s\p{P}&&[^?¿]]*(?P<word>\p{L}+)(?:[\s\p{P}&&[^?¿'\"“‘(]]+|$)(?P<rest>.*)$",
    regex.DOTALL | regex.VERSION1,
)
_NOT_WORDS = regex.compile(r"[\p{P}\p{S}\s]+")


class Intent(enum.Enum):
    HELP = "help"
    EXPLAIN = "explain"
    ACTIVITIES = "activities"
    SETTINGS = "settings"
    RESET = "reset"
    FORGET = "forget"
    STOP = "stop"
    START = "start"
    CHAT = "chat"
    ANOTHER = "another"  # another activity idea on the last topic
    ALL_IDEAS = "all_ideas"  # the whole list of ideas on the last topic
    MORE = "more"  # tell me more about the last answer
    FEEDBACK = "feedback"  # 👍 or 👎 on the last answer: the argument is the payload
    CHECKIN = "checkin"  # a check-in's quick answer: the argument is the verdict
    NO_RESEARCH = "no_research"  # out of every experiment and export from now on
    RESEARCH_OK = "research_ok"  # undoes "no research"


@dataclass(frozen=True)
class Route:
    intent: Intent
    argument: str = ""
    language: str | None = None  # the language of the command word, when it tells one


# Command words that say which language the user writes in, for the fixed texts.
_LANGUAGE_OF = {
    **dict.fromkeys(
        ["explica", "explicame", "explícame", "actividad", "actividades", "ajustes", "hola",
         "buenos dias", "buenos días", "buenas tardes", "buenas", "hola sprout",
         "ayuda", "nuevo", "olvidame", "olvídame", "borra mis datos", "parar", "empezar",
         "sin investigacion", "sin investigación", "investigacion si", "investigación sí"],
        "es",
    ),
    **dict.fromkeys(
        ["esbonia", "gweithgaredd", "gweithgareddau", "gosodiadau", "shwmae", "helo",
         "bore da", "prynhawn da", "noswaith dda", "helo sprout", "newydd",
         "anghofia fi", "dilea fy nata", "stopio", "dechrau", "dim ymchwil", "ymchwil iawn"],
        "cy",
    ),
}  # fmt: skip


# Commands that take the rest of the message as their argument, by their first word.
_LEADING_WORDS = {
    **dict.fromkeys(["explain", "explica", "explicame", "explícame", "esbonia"], Intent.EXPLAIN),
    **dict.fromkeys(
        ["activity", "activities", "activites", "activitys", "actividad", "actividades",
         "gweithgaredd", "gweithgareddau"],
        Intent.ACTIVITIES,
    ),
    **dict.fromkeys(["settings", "setting", "ajustes", "gosodiadau"], Intent.SETTINGS),
}  # fmt: skip

# Commands that are the whole message.
_WHOLE_MESSAGES = {
    **dict.fromkeys(
        ["hi", "hello", "hey", "hiya", "help", "menu", "hola", "ayuda", "helo", "shwmae",
         "hi there", "hello there", "hey there", "hi sprout", "hello sprout", "good morning",
         "good afternoon", "good evening", "buenos dias", "buenos días", "buenas tardes", "buenas",
         "hola sprout", "bore da", "prynhawn da", "noswaith dda", "helo sprout"],
        Intent.HELP,
    ),
    **dict.fromkeys(["reset", "new", "new chat", "start again", "nuevo", "newydd"], Intent.RESET),
    **dict.fromkeys(
        ["forget me", "delete my data", "delete me", "erase my data", "olvidame", "olvídame",
         "borra mis datos", "anghofia fi", "dilea fy nata"],
        Intent.FORGET,
    ),
    **dict.fromkeys(["stop", "unsubscribe", "parar", "stopio"], Intent.STOP),
    **dict.fromkeys(["start", "unstop", "subscribe", "empezar", "dechrau"], Intent.START),
    **dict.fromkeys(
        ["no research", "sin investigacion", "sin investigación", "dim ymchwil"],
        Intent.NO_RESEARCH,
    ),
    **dict.fromkeys(
        ["research ok", "investigacion si", "investigación sí", "ymchwil iawn"],
        Intent.RESEARCH_OK,
    ),
}  # fmt: skip


# What a tapped button asks, by its payload.
_PAYLOADS = {
    ANOTHER: Route(Intent.ANOTHER),
    MORE: Route(Intent.MORE),
    UP: Route(Intent.FEEDBACK, UP),
    DOWN: Route(Intent.FEEDBACK, DOWN),
    **{payload: Route(Intent.CHECKIN, verdict) for payload, verdict in VERDICTS.items()},
}
# The same, typed.
_WHOLE_MESSAGES.update(
    {
        **dict.fromkeys(["another idea", "otra idea", "syniad arall"], Intent.ANOTHER),
        **dict.fromkeys(
            ["all ideas", "all the ideas", "todas las ideas", "pob syniad"], Intent.ALL_IDEAS
        ),
        **dict.fromkeys(["tell me more", "cuéntame más", "cuentame mas", "dweud mwy"], Intent.MORE),
    }
)
_LANGUAGE_OF.update(
    {**dict.fromkeys(["otra idea", "todas las ideas", "cuéntame más", "cuentame mas"], "es"),
     **dict.fromkeys(["syniad arall", "pob syniad", "dweud mwy"], "cy")}
)  # fmt: skip
# A thumb typed alone, in any skin tone.
_THUMB = regex.compile(r"^\s*(?P<thumb>[👍👎])[\U0001F3FB-\U0001F3FF\uFE0F]?\s*$")
_THUMBS = {"👍": UP, "👎": DOWN}


def route(text: str, payload: str = "") -> Route:
    """Place a message. The argument keeps the user's own casing and wording.

    Anything unplaced is a conversation, a newcomer's first message too: a question deserves
    its answer, not the menu. A message with no words (an emoji, a dot) gets the help text.
    A tapped button is placed by its `payload`, whatever its label says."""
    if payload in _PAYLOADS:
        return _PAYLOADS[payload]
    if thumb := _THUMB.match(text):
        return _PAYLOADS[_THUMBS[thumb["thumb"]]]
    whole = _NOT_WORDS.sub(" ", text).strip().casefold()
    if whole in _WHOLE_MESSAGES:
        return Route(_WHOLE_MESSAGES[whole], language=_LANGUAGE_OF.get(whole))
    match = _COMMAND.match(text)
    word = match["word"].casefold() if match else ""
    if match is not None and word in _LEADING_WORDS:
        return Route(_LEADING_WORDS[word], match["rest"].strip(), _LANGUAGE_OF.get(word))
    if not whole:
        return Route(Intent.HELP)
    return Route(Intent.CHAT, text.strip())
