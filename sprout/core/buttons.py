"""Tap-to-reply buttons: which an answer gets, and what a tap means.

An answer the model wrote ends with three buttons (WhatsApp allows three in a session
message): after an activity "Another idea", 👍, 👎; after an explanation "Tell me more", 👍,
👎. Fixed texts (commands, errors, "too long", stop, safeguarding help) and apologies get none.
A tap comes back with its payload, a short code (Telegram allows 64 bytes of callback data),
and is routed by it, never by the label, which is translated.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sprout.core.prompts import DEFAULT_LANGUAGE, Prompts

ANOTHER = "sprout:another"
MORE = "sprout:more"
UP = "sprout:up"
DOWN = "sprout:down"
IDEAS = "sprout:ideas"  # yes to a regular idea, every morning
# A check-in's quick answers (also the ids of the approved check-in template's buttons).
LOVED, UNTRIED, TRICKY = "sprout:checkin:loved", "sprout:checkin:untried", "sprout:checkin:tricky"
VERDICTS = {LOVED: "loved", UNTRIED: "untried", TRICKY: "tricky"}
THUMBS = {UP: "👍", DOWN: "👎"}


class Offer(enum.Enum):
    """The set of buttons an answer gets; its value names it (and its WhatsApp content)."""

    ACTIVITY = "activity"
    EXPLANATION = "explanation"
    IDEAS = "ideas"  # one button: an idea every morning
    CHECKIN = "checkin"  # how did the activity go: loved it, didn't try, tricky


# Which answers get which buttons, by the answer's kind.
OFFERS = {"activities": Offer.ACTIVITY, "explain": Offer.EXPLANATION, "chat": Offer.EXPLANATION}
# The fixed texts that end with buttons: the thanks for a 👍, to a family without regular
# ideas, offers them; a check-in offers its quick answers.
FIXED_OFFERS = {
    "thanks_ideas": Offer.IDEAS,
    "checkin_one": Offer.CHECKIN,
    "checkin_list": Offer.CHECKIN,
}


@dataclass(frozen=True)
class Button:
    payload: str
    label: str


@dataclass(frozen=True)
class Buttons:
    """The buttons under an answer, in `language`; `hint` says the same in words, for where
    buttons cannot be shown."""

    offer: Offer
    language: str
    options: tuple[Button, ...]
    hint: str


def buttons(offer: Offer, prompts: Prompts, language: str | None) -> Buttons:
    language = language if language and prompts.has_language(language) else DEFAULT_LANGUAGE
    if offer is Offer.IDEAS:
        ideas = Button(IDEAS, prompts.text("button_ideas", language))
        return Buttons(offer, language, (ideas,), prompts.text("buttons_hint_ideas", language))
    if offer is Offer.CHECKIN:
        answers = tuple(
            Button(payload, prompts.text(f"button_{verdict}", language))
            for payload, verdict in VERDICTS.items()
        )
        return Buttons(offer, language, answers, prompts.text("buttons_hint_checkin", language))
    if offer is Offer.ACTIVITY:
        first, hint = Button(ANOTHER, prompts.text("button_another", language)), "buttons_hint"
    else:
        first, hint = Button(MORE, prompts.text("button_more", language)), "buttons_hint_more"
    thumbs = tuple(Button(payload, label) for payload, label in THUMBS.items())
    return Buttons(offer, language, (first, *thumbs), prompts.text(hint, language))


def buttons_for(kind: str | None, prompts: Prompts, language: str | None) -> Buttons | None:
    """The buttons for an answer of `kind`, or None for one that gets none."""
    offer = OFFERS.get(kind or "") or FIXED_OFFERS.get(kind or "")
    return buttons(offer, prompts, language) if offer is not None else None
