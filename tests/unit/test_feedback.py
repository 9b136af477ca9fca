"""After a 👎, one optional question: the next message within ten minutes that is not a
command is that rating's comment, thanked for and not answered; its words are never logged."""

import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from structlog.testing import capture_logs

from sprout.core.bot import Bot, BotConfig
from sprout.core.delivery import Channel, Delivery
from sprout.core.messages import Incoming
from sprout.core.prompts import Prompts
from sprout.core.specs import WHATSAPP
from sprout.core.store import Store
from sprout.core.tables import FeedbackRow
from sprout.export import export_turns
from tests.unit.doubles import ButtonRecorder, FakeLLM

USER = "whatsapp:+447700900001"
IDEA = "**Dino stomp**\nStomp and count each step.\nAreas: Mathematics"
COMMENT = "Something for a rainy day indoors would have been better"


async def converse(
    store: Store, prompts: Prompts, model: FakeLLM, texts: list[str | tuple[str, timedelta]]
) -> ButtonRecorder:
    """Each text answered in turn (a pair: the text, written that long after now)."""
    sender = ButtonRecorder()
    bot = Bot(model, prompts, store, BotConfig(retry_wait_s=0))
    delivery = Delivery(store, bot, {"whatsapp": Channel(WHATSAPP, sender, buttons=sender)})
    for n, item in enumerate(texts):
        text, later = item if isinstance(item, tuple) else (item, timedelta())
        at = datetime.now(UTC) + later
        incoming = Incoming("whatsapp", USER, text, f"SM{n}", received_at=at)
        inbound = await store.record_inbound(incoming)
        assert inbound is not None
        await delivery.run(inbound)
    return sender


async def comments(store: Store) -> list[tuple[str, str | None]]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(
            select(FeedbackRow.rating, FeedbackRow.comment).order_by(FeedbackRow.id)
        )
        return [(rating, comment) for rating, comment in rows]


async def test_the_next_message_after_a_thumbs_down_is_its_comment(
    store: Store, prompts: Prompts
) -> None:
    model = FakeLLM(IDEA)
    with capture_logs() as logs:
        sender = await converse(store, prompts, model, ["Activities dinosaurs", "👎", COMMENT])
    assert sender.sent[1:] == [prompts.text("feedback_better"), prompts.text("feedback_noted")]
    assert len(model.requests) == 1, "the comment is not answered as a question"
    assert sender.buttons.keys() == {0}, "no buttons under the question or the thanks"
    assert await comments(store) == [("down", COMMENT)]
    assert COMMENT not in repr(logs) and "rainy" not in repr(logs)
    [rated, *_] = await export_turns(store)
    assert rated["feedback"] == "down" and rated["feedback_comment"] == COMMENT


async def test_a_thumbs_up_asks_for_no_comment(store: Store, prompts: Prompts) -> None:
    model = FakeLLM(IDEA)
    sender = await converse(store, prompts, model, ["Explain rain", "👍", "Explain snow"])
    assert sender.sent[1] == prompts.text("thanks_ideas"), "only offers regular ideas"
    assert len(model.requests) == 2
    assert await comments(store) == [("up", None)]


async def test_a_command_after_the_question_is_carried_out_and_ends_the_wait(
    store: Store, prompts: Prompts
) -> None:
    model = FakeLLM(IDEA)
    texts: list[str | tuple[str, timedelta]] = ["Activities dinosaurs", "👎", "help", COMMENT]
    sender = await converse(store, prompts, model, texts)
    assert "Sprout" in sender.sent[2], "the help text (as WhatsApp formats it)"
    assert len(model.requests) == 2, "the message after the command is a question again"
    assert await comments(store) == [("down", None)]


async def test_a_message_more_than_ten_minutes_later_is_a_question(
    store: Store, prompts: Prompts
) -> None:
    model = FakeLLM(IDEA)
    late = (COMMENT, timedelta(minutes=11))
    sender = await converse(store, prompts, model, ["Explain rain", "👎", late])
    assert prompts.text("feedback_noted") not in sender.sent
    assert len(model.requests) == 2
    assert await comments(store) == [("down", None)]


async def test_forget_me_erases_the_comment(store: Store, prompts: Prompts) -> None:
    texts: list[str | tuple[str, timedelta]] = ["Explain rain", "👎", COMMENT, "forget me"]
    await converse(store, prompts, FakeLLM(IDEA), texts)
    assert await comments(store) == []


async def test_a_worrying_reply_to_the_question_gets_help_not_thanks(
    store: Store, prompts: Prompts
) -> None:
    worry = "I think I have postnatal depression and I can't cope"
    sender = await converse(store, prompts, FakeLLM(IDEA), ["Explain rain", "👎", worry])
    assert "116 123" in "\n".join(sender.sent[2:])
    assert prompts.text("feedback_noted") not in sender.sent
    assert await comments(store) == [("down", None)], "screened first, never kept as a comment"


async def test_outside_the_job_log_ratings_and_comments_look_at_everything_stored(
    store: Store,
) -> None:
    """`sprout chat` answers without recording the message: "before" is then sys.maxsize,
    which PostgreSQL's INTEGER id must be compared with as a BIGINT."""
    assert await store.add_feedback(USER, sys.maxsize, "down", frozenset({"explain"})) is None
    since = datetime.now(UTC) - timedelta(minutes=10)
    assert await store.awaiting_comment(USER, sys.maxsize, "feedback_better", since) is None
