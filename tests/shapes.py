"""Answers in the shapes chat models give them, at any length: the chunker's property tests
and its benchmark (figure 6) read the same texts.

Each shape repeats its own pattern (a list item, a table row, a sentence, a section) until the
answer reaches the size asked for, so a shape at 16 KB is the same kind of text as at 2 KB.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from itertools import count

_IDEAS = [
    ("Dino dig", "Bury toy dinosaurs in a tray of sand and let your child dig them out."),
    ("Footprint painting", "Dip the dinosaurs' feet in paint and stamp them across paper."),
    ("Ice eggs", "Freeze small dinosaurs in water balloons; melt them with warm water."),
    ("Sorting game", "Sort the dinosaurs by size, then by colour, then by how they move."),
    ("Story time", "Read a dinosaur story and ask what your child thinks happens next."),
    ("Stomp and roar", "Move like different dinosaurs: big slow stomps, quick tiny steps."),
]
_AREAS = [
    "Physical Development, Understanding the World",
    "Expressive Arts and Design",
    "Mathematics, Communication and Language",
]
_SENTENCES = [
    "The sky looks blue because sunlight is made of many colours mixed together.",
    "When it meets the air, the blue part bounces around much more than the red part.",
    "So wherever you look in the sky, some of that scattered **blue light** reaches you!",
    "At sunset the light travels further through the air, and more of the blue is lost.",
    "That is why the evening sky can glow orange and pink — try spotting it together.",
    "You could ask your child: *what colour do you think the sky is on Mars?*",
]
_EMOJI = ["🦕", "🦖", "🌋", "🥚", "🌿", "👣", "🎨", "👨‍👩‍👧", "🇬🇧", "👍🏽", "✨", "☀️"]


def _until(size: int, head: str, parts: Iterator[str], glue: str = "\n\n") -> str:
    text = head
    for part in parts:
        if len(text.encode()) >= size:
            break
        text += glue + part if text else part
    return text


def numbered_list(size: int) -> str:
    """The shape most chat models give "Activities …": an intro, then numbered ideas with bold
    names and an "Areas:" line, a blank line between them, then a closing line."""
    ideas = (
        f"{n}. **{_IDEAS[n % 6][0]}**: {_IDEAS[n % 6][1]} Talk about what you notice together.\n"
        f"   Areas: {_AREAS[n % 3]}"
        for n in count(1)
    )
    return _until(size, "Here are some dinosaur activities to try together:", ideas)


def nested_list(size: int) -> str:
    sections = (
        f"- **{_IDEAS[n % 6][0]}**\n  - What you need: a tray, sand, {n % 5 + 2} dinosaurs\n"
        f"  - How: {_IDEAS[n % 6][1]}\n    - Younger children: show them first.\n"
        f"    - Older children: let them lead.\n  - Areas: {_AREAS[n % 3]}"
        for n in count()
    )
    return _until(size, "A few ideas, with what you need:", sections, "\n")


def table(size: int) -> str:
    rows = (
        f"| {['Mon', 'Tue', 'Wed', 'Thu', 'Fri'][n % 5]} | {_IDEAS[n % 6][0]} | {_AREAS[n % 3]} |"
        for n in count()
    )
    head = "Here is a week of ideas:\n\n| Day | Activity | Areas |\n|-----|----------|-------|"
    return _until(size, head, rows, "\n")


def long_paragraph(size: int) -> str:
    """One paragraph with no line breaks at all, as some models write explanations."""
    return _until(size, "", (_SENTENCES[n % 6] for n in count()), " ")


def sections(size: int) -> str:
    parts = (
        f"### {_IDEAS[n % 6][0]}\n\n{_IDEAS[n % 6][1]} {_SENTENCES[n % 6]}\n\n"
        f"{_SENTENCES[(n + 1) % 6]} Areas: {_AREAS[n % 3]}."
        for n in count()
    )
    return _until(size, "Here is a plan for the week.", parts)


def code_fence(size: int) -> str:
    code = "\n".join(f"    print('roar', {i})  # {_IDEAS[i % 6][0]}" for i in range(8))
    parts = (
        f"Step {n + 1}: type this in with your child.\n\n```python\nfor n in range(3):\n"
        f"{code}\n```\n\nThen press run and count the roars together."
        for n in count()
    )
    return _until(size, "Coding can be a game for older children:", parts)


def emoji_dense(size: int) -> str:
    lines = (
        f"- {_EMOJI[n % 12]}{_EMOJI[(n + 3) % 12]} {_IDEAS[n % 6][0]} "
        + "".join(_EMOJI[(n + k) % 12] for k in range(6))
        + f" {_IDEAS[n % 6][1]} {_EMOJI[(n + 7) % 12]}"
        for n in count()
    )
    return _until(size, "🦕🦖 Dino day! 🌋🥚", lines, "\n")


# The shapes figure 6 reports, one row each.
SHAPES: dict[str, Callable[[int], str]] = {
    "list": numbered_list,
    "nested list": nested_list,
    "table": table,
    "long paragraph": long_paragraph,
    "headings+paragraphs": sections,
    "code fence": code_fence,
    "emoji-dense": emoji_dense,
}


def variants(size: int) -> dict[str, str]:
    """The shapes, and the ways models vary them: "•" bullets, "1)" and all-"1." numbering,
    CRLF line ends, a list straight after a colon, one item longer than a WhatsApp message,
    Welsh and Spanish text."""
    answers = {name: shape(size) for name, shape in SHAPES.items()}
    listed = answers["list"]
    tight = listed.replace("\n\n", "\n")
    answers["bullets •"] = re.sub(r"(?m)^\d+\. ", "• ", tight)
    answers["numbered 1)"] = re.sub(r"(?m)^(\d+)\. ", r"\1) ", listed)
    answers["all numbered 1."] = re.sub(r"(?m)^\d+\. ", "1. ", listed)
    answers["crlf"] = answers["headings+paragraphs"].replace("\n", "\r\n")
    answers["list after colon"] = tight
    answers["one long item"] = "Try this:\n\n1. **Big dig**: " + long_paragraph(max(size, 1800))
    answers["welsh"] = (
        "Dyma rai syniadau:\n\n1. **Cloddio deinosoriaid**: Claddwch y deinosoriaid yn y tywod. "
        "Gadewch i'ch plentyn eu cloddio allan.\n   Meysydd: Datblygiad Corfforol\n\n"
        "2. **Paentio olion traed**: Trochwch draed y deinosoriaid mewn paent. Siaradwch am y "
        "siapiau.\n   Meysydd: Celfyddydau Mynegiannol"
    )
    answers["spanish"] = (
        "¡Claro! Aquí tienes algunas ideas:\n\n- **Excavación**: Entierra dinosaurios en arena. "
        "¿Qué encontrará tu hijo?\n- **Huellas**: Moja las patas en pintura y estampa huellas. "
        "¡Qué divertido!\n- **Clasificar**: Ordena los dinosaurios por tamaño y color."
    )
    return answers
