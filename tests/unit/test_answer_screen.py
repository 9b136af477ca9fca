"""The answer screen in the bot: a chunk that breaks a rule (or that moderation flags) is not
sent, nor is anything after it; the safe response for the reason goes instead, the model is
stopped, and a safety event is recorded without the words."""

import asyncio

from sqlalchemy import select

from sprout.core.answer_rules import Reason
from sprout.core.bot import Bot, BotConfig
from sprout.core.formatting import to_telegram_html, to_whatsapp
from sprout.core.logs import user_ref
from sprout.core.messages import Incoming, Media
from sprout.core.prompts import Prompts
from sprout.core.specs import TELEGRAM_STREAMING, WHATSAPP
from sprout.core.store import Store
from sprout.core.tables import Base, SafetyAlertRow
from sprout.core.turn import Ask
from tests.unit.doubles import FakeLLM, FakeTranscriber, SlowModerator, StoredMedia

USER = "whatsapp:+447700900001"
FILLER = (
    "talk together about what you can see and let your child lead the game while you follow "
    "and name what they do"
)
DOSE = "For a fever you can give Calpol, 5 ml every 4 hours."


def paragraph(n: int) -> str:
    """One sentence of about 750 characters: one WhatsApp message each."""
    return f"Idea {n}: " + ", then ".join([FILLER] * 7) + "."


def message(text: str) -> Incoming:
    return Incoming("whatsapp", USER, text, "SM1")


async def events(store: Store) -> list[dict[str, object]]:
    async with store.engine.connect() as connection:
        rows = await connection.execute(select(Base.metadata.tables["safety_events"]))
        return [dict(row._mapping) for row in rows]


async def test_an_answer_failing_in_its_third_chunk_sends_the_first_two_then_the_safe_response(
    prompts: Prompts, store: Store
) -> None:
    paragraphs = [paragraph(1), paragraph(2), paragraph(3) + " " + DOSE, paragraph(4), paragraph(5)]
    paragraphs.append(paragraph(6))
    model = FakeLLM("\n\n".join(paragraphs))
    sent = await Bot(model, prompts, store).reply(message("Explain fevers"), WHATSAPP)
    safe = to_whatsapp(prompts.safe_text(Reason.DOSE)).text
    assert sent == [paragraphs[0], paragraphs[1], safe]
    assert "NHS 111" in safe and "pharmacist" in safe
    for _ in range(50):  # the model's stream closes as the generators above it unwind
        if model.stopped_early:
            break
        await asyncio.sleep(0.01)
    assert model.stopped_early == 1, "the model's stream was closed, not read to the end"
    [event] = await events(store)
    assert (event["stage"], event["source"], event["category"]) == ("answer", "rule", "dose")
    assert event["rule"] == "dose_measure" and event["severity"] == "medium"
    assert event["user_ref"] == user_ref(USER) and event["channel"] == "whatsapp"
    assert "Calpol" not in str(event) and USER not in str(event), "no words, no number"


async def test_a_dose_split_over_telegram_sentences_is_caught_with_the_sentence_before(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("Rest helps a lot. You can give Calpol for a fever. Use 5 ml every 4 hours.")
    sent = await Bot(model, prompts, store).reply(message("Explain fevers"), TELEGRAM_STREAMING)
    assert not any("5 ml" in text for text in sent)
    assert sent[-1] == to_telegram_html(prompts.safe_text(Reason.DOSE)).text
    assert "You can give Calpol for a fever." in sent, "that sentence alone passed"


async def test_a_diagnosis_and_an_off_list_link_get_their_own_safe_responses(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("It sounds like your child has croup.")
    [sent] = await Bot(model, prompts, store).reply(message("Explain coughs"), WHATSAPP)
    assert sent == to_whatsapp(prompts.safe_text(Reason.DIAGNOSIS)).text
    model.reply = "Lovely crafts at https://crafts.example.com/autumn today."
    [sent] = await Bot(model, prompts, store).reply(message("Activities autumn"), WHATSAPP)
    assert sent == to_whatsapp(prompts.safe_text(Reason.LINK)).text
    assert [e["category"] for e in await events(store)] == ["diagnosis", "link"]


async def test_the_safe_response_is_in_the_parents_language(prompts: Prompts, store: Store) -> None:
    model = FakeLLM("Dale 5 ml de paracetamol cada 6 horas.")
    [sent] = await Bot(model, prompts, store).reply(message("Explica la fiebre"), WHATSAPP)
    assert sent == to_whatsapp(prompts.safe_text(Reason.DOSE, "es")).text


async def test_moderation_flagging_a_chunk_of_the_answer_stops_it(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM(paragraph(1) + "\n\n" + paragraph(2) + " Some say to hurt the cat.")
    bot = Bot(model, prompts, store, BotConfig(moderator=SlowModerator(model, harmful=("hurt",))))
    sent = await bot.reply(message("Explain cats"), WHATSAPP)
    assert sent == [paragraph(1), to_whatsapp(prompts.safe_text(Reason.MODERATION)).text]
    [event] = await events(store)
    assert (event["source"], event["category"], event["rule"]) == (
        "moderation",
        "moderation",
        "violence",
    )


async def test_a_resumed_answer_that_already_ended_with_a_safe_response_sends_nothing(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("More words that must not follow.")
    sent = paragraph(1) + "\n\n" + prompts.safe_text(Reason.DOSE)
    ask = Ask(message("Explain fevers"), WHATSAPP, already_sent=sent, messages_sent=2)
    assert [chunk async for chunk in await Bot(model, prompts, store).begin(ask)] == []
    assert model.requests == []


async def test_a_resumed_answer_is_screened_with_what_the_parent_already_has(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("Use 5 ml every 4 hours.")
    sent = "You can give Calpol for a fever."
    ask = Ask(message("Explain fevers"), TELEGRAM_STREAMING, already_sent=sent, messages_sent=1)
    chunks = [chunk.text async for chunk in await Bot(model, prompts, store).begin(ask)]
    assert chunks == [to_telegram_html(prompts.safe_text(Reason.DOSE)).text]


async def test_a_severe_request_is_recorded_and_wakes_the_operators_outbox(
    prompts: Prompts, store: Store
) -> None:
    woken: list[bool] = []
    bot = Bot(
        FakeLLM("I'm listening."), prompts, store, BotConfig(alert=lambda: woken.append(True))
    )
    help_text, _ = await bot.reply(message("I can't cope anymore, I want to end it all"), WHATSAPP)
    assert "116 123" in help_text
    [event] = await events(store)
    assert (event["stage"], event["source"], event["category"]) == ("request", "matcher", "crisis")
    assert (event["severity"], event["rule"]) == ("severe", "phrases/en")
    assert woken == [True]
    async with store.engine.connect() as connection:
        [body] = (await connection.execute(select(SafetyAlertRow.body))).scalars()
    assert '"category":"crisis"' in body and user_ref(USER) in body
    assert "cope" not in body and "+44" not in body, "no words, no phone number"


async def test_without_a_webhook_nothing_waits_in_the_outbox(
    prompts: Prompts, store: Store
) -> None:
    await Bot(FakeLLM("I'm listening."), prompts, store).reply(
        message("I can't cope anymore, I want to end it all"), WHATSAPP
    )
    assert len(await events(store)) == 1
    async with store.engine.connect() as connection:
        assert (await connection.execute(select(SafetyAlertRow.id))).all() == []


async def test_a_voice_notes_own_words_about_a_dose_are_quoted_not_screened(
    prompts: Prompts, store: Store
) -> None:
    said = "He had 5 ml of Calpol an hour ago, what quiet games can we play?"
    config = BotConfig(transcriber=FakeTranscriber(said))
    answer_text = "Try a cosy story with teddies, then a slow game of I spy."
    bot = Bot(FakeLLM(answer_text), prompts, store, config)
    note = Incoming(
        "whatsapp", USER, "", "SM2", media=(Media("https://api.twilio.com/v", "audio/ogg"),)
    )
    media = StoredMedia({"https://api.twilio.com/v": b"OggS"})
    answer = await bot.begin(Ask(note, WHATSAPP, media=media))
    [sent] = [chunk.text async for chunk in answer]
    assert sent.startswith("🎤 _“He had 5 ml of Calpol") and sent.endswith("I spy.")
    assert await events(store) == []
