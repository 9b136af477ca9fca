from sprout.core.answer_rules import Reason
from sprout.core.bot import Bot, BotConfig
from sprout.core.formatting import to_whatsapp
from sprout.core.messages import Incoming, Media, utf16_len
from sprout.core.prompts import FLAGGED, Prompts
from sprout.core.specs import WEB, WHATSAPP
from sprout.core.store import Store
from sprout.core.turn import Ask
from tests.unit.doubles import FakeLLM, FakeTranscriber, SlowModerator, StoredMedia


def message(text: str, media: tuple[Media, ...] = ()) -> Incoming:
    return Incoming(
        channel="whatsapp",
        user_id="whatsapp:+447700900001",
        text=text,
        message_id="SM1",
        media=media,
    )


async def test_greeting_gets_the_help_text_without_a_model_call(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM()
    chunks = await Bot(model, prompts, store).reply(message("Hi"), WHATSAPP)
    assert "Explain" in chunks[0] and "Activities" in chunks[0]
    assert "**" not in chunks[0]
    assert model.requests == []


async def test_explain_sends_the_question_as_written(prompts: Prompts, store: Store) -> None:
    model = FakeLLM("The sky is blue because *sunlight* bounces around.")
    chunks = await Bot(model, prompts, store).reply(
        message(" EXPLAIN: Why is the Sky blue?"), WHATSAPP
    )
    assert chunks == ["The sky is blue because _sunlight_ bounces around."]
    assert model.requests[0][-1]["content"].endswith("Why is the Sky blue?")
    assert "3 years old" in model.requests[0][0]["content"]


async def test_empty_commands_ask_what_is_wanted(prompts: Prompts, store: Store) -> None:
    bot = Bot(FakeLLM(), prompts, store)
    assert "explain" in (await bot.reply(message("Explain"), WHATSAPP))[0].lower()
    assert "topic" in (await bot.reply(message("activities"), WHATSAPP))[0].lower()


async def test_too_long_gets_a_polite_answer(prompts: Prompts, store: Store) -> None:
    model = FakeLLM()
    chunks = await Bot(model, prompts, store, BotConfig(max_input_chars=50)).reply(
        message("Explain " + "why " * 20), WHATSAPP
    )
    assert "50" in chunks[0]
    assert model.requests == []


async def test_a_voice_note_alone_is_answered_kindly(prompts: Prompts, store: Store) -> None:
    media = (Media("https://api.twilio.com/x", "audio/ogg"),)
    chunks = await Bot(FakeLLM(), prompts, store).reply(message("", media=media), WHATSAPP)
    assert "text" in chunks[0]


async def test_long_answers_are_cut_for_whatsapp(prompts: Prompts, store: Store) -> None:
    paragraph = "Dinosaurs stomp and roar in the mud 🦕 and we copy them. " * 8
    # Each paragraph its own (twelve identical ones would be a looping model, stopped early).
    model = FakeLLM("\n\n".join(f"{n}: {paragraph.strip()}" for n in range(12)))
    chunks = await Bot(model, prompts, store).reply(message("Activities dinosaurs"), WHATSAPP)
    assert len(chunks) > 2
    assert all(utf16_len(chunk) <= 1600 for chunk in chunks)


async def test_model_failure_is_retried_then_apologised_for(prompts: Prompts, store: Store) -> None:
    model = FakeLLM("An answer.")
    model.failures = [0, 0]
    chunks = await Bot(model, prompts, store, BotConfig(retry_wait_s=0)).reply(
        message("Explain rain"), WHATSAPP
    )
    assert len(model.requests) == 2
    assert chunks == [prompts.text("apology")]


async def test_a_failure_mid_answer_continues_from_what_was_delivered(
    prompts: Prompts, store: Store
) -> None:
    first = "First paragraph about rain and puddles, long enough to be sent on its own. " * 4
    model = FakeLLM(first.strip() + "\n\nSecond paragraph.\n\nThird paragraph.")
    model.failures = [len(first.split()) + 2]
    chunks = await Bot(model, prompts, store, BotConfig(retry_wait_s=0)).reply(
        message("Explain rain"), WHATSAPP
    )
    continuation = model.requests[1]
    assert continuation[-2]["role"] == "assistant"
    assert continuation[-2]["content"] == first.strip()
    assert continuation[-1]["content"] == prompts.continue_instruction
    assert chunks[0] == first.strip()


async def test_a_live_view_sees_the_answer_word_by_word(prompts: Prompts, store: Store) -> None:
    model = FakeLLM("Clouds are made of tiny drops.\n\nThey fall as rain.")
    shown: list[str] = []
    chunks = [
        chunk.text
        async for chunk in Bot(model, prompts, store).chunks(
            message("Explain rain"), WHATSAPP, on_text=shown.append
        )
    ]
    assert len(shown) > len(chunks), "smaller pieces than the chunks"
    assert "".join(shown) == "Clouds are made of tiny drops.\n\nThey fall as rain."


async def test_a_live_view_never_shows_a_dose_the_answer_screen_stops(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("Fevers are common. Give 5 ml of Calpol every 4 hours until it passes.")
    shown: list[str] = []
    asked = message("Explain fevers")
    chunks = [c.text async for c in Bot(model, prompts, store).chunks(asked, WEB, shown.append)]
    assert "Calpol" not in "".join(chunks)
    assert "5 ml" not in "".join(shown) and "every 4 hours" not in "".join(shown)
    assert prompts.safe_text(Reason.DOSE).split()[0] in "".join(shown), "the safe text shows"


async def test_a_live_view_sees_fixed_texts_whole(prompts: Prompts, store: Store) -> None:
    shown: list[str] = []
    chunks = [
        c.text
        async for c in Bot(FakeLLM(), prompts, store).chunks(
            message("Hi"), WHATSAPP, on_text=shown.append
        )
    ]
    assert shown == chunks


async def test_moderation_runs_beside_the_model_and_passes_a_kind_question(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("Worms help the soil breathe.")
    moderator = SlowModerator(model, harmful=("hurt",))
    bot = Bot(model, prompts, store, BotConfig(moderator=moderator))
    assert await bot.reply(message("Explain why worms matter"), WHATSAPP) == [
        "Worms help the soil breathe."
    ]
    assert moderator.checked == ["Explain why worms matter", "Worms help the soil breathe."]


async def test_a_flagged_request_gets_the_safe_text_and_nothing_of_the_answer(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("Something that must never be shown.")
    bot = Bot(model, prompts, store, BotConfig(moderator=SlowModerator(model, harmful=("hurt",))))
    shown: list[str] = []
    asked = message("Explain how to hurt a cat")
    chunks = [chunk.text async for chunk in bot.chunks(asked, WHATSAPP, on_text=shown.append)]
    assert chunks == [to_whatsapp(prompts.safeguarding.response(FLAGGED)).text]
    assert "never" not in "".join(shown), "nothing of the answer reached a live view either"


async def test_a_first_message_that_is_a_question_is_answered_after_an_introduction(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("Try a puddle walk!")
    [answer] = await Bot(model, prompts, store).reply(message("rainy day ideas?"), WHATSAPP)
    intro = to_whatsapp(prompts.text("intro")).text
    assert answer == intro + "\n\nTry a puddle walk!"
    assert model.requests[0][-1]["content"] == "rainy day ideas?"


async def test_a_crisis_as_the_first_message_gets_the_help_first_then_a_kind_reply(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("I'm really glad you told me.")
    help_text, reply = await Bot(model, prompts, store).reply(
        message("I can't cope anymore, I want to end my life"), WHATSAPP
    )
    assert "116 123" in help_text and "999" in help_text
    assert reply == "I'm really glad you told me."
    [request] = model.requests
    assert "116 123" in request[0]["content"], "the model knows what the parent was sent"
    assert model.tools_offered == [()]


async def test_an_emergency_gets_the_help_alone_without_asking_the_model(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM()
    chunks = await Bot(model, prompts, store).reply(
        message("my son swallowed a button battery"), WHATSAPP
    )
    assert len(chunks) == 1 and "999" in chunks[0]
    assert model.requests == []


async def test_an_opted_out_parent_still_gets_the_help(prompts: Prompts, store: Store) -> None:
    await store.set_opted_out(message("").user_id, True)
    chunks = await Bot(FakeLLM(), prompts, store).reply(message("baby not breathing"), WHATSAPP)
    assert "999" in chunks[0]


async def test_moderation_flagging_self_harm_gets_the_crisis_help_not_the_answer(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM("Something that must never be shown.")
    words = "I keep thinking about walking away from everything"  # no phrase of ours
    moderator = SlowModerator(model, chosen={words: "self-harm/intent"})
    bot = Bot(model, prompts, store, BotConfig(moderator=moderator))
    answer = await bot.begin(Ask(message(words), WHATSAPP))
    help_text, reply = [chunk.text async for chunk in answer]
    assert help_text == to_whatsapp(prompts.safeguarding.response("crisis")).text
    assert reply == "Something that must never be shown.", "the kind reply, asked anew"
    assert "116 123" in model.requests[-1][0]["content"]
    assert answer.kind == "crisis"
    assert answer.concern is not None and answer.concern.source == "moderation"


async def test_a_voice_note_in_crisis_gets_what_was_heard_then_the_help(
    prompts: Prompts, store: Store
) -> None:
    transcriber = FakeTranscriber("I think I have postnatal depression")
    config = BotConfig(transcriber=transcriber)
    bot = Bot(FakeLLM("Thank you for telling me."), prompts, store, config)
    note = message("", media=(Media("https://api.twilio.com/x", "audio/ogg"),))
    media = StoredMedia({"https://api.twilio.com/x": b"OggS"})
    answer = await bot.begin(Ask(note, WHATSAPP, media=media))
    chunks = [chunk.text async for chunk in answer]
    assert chunks[0].startswith("🎤 _“I think I have postnatal depression”_")
    assert "116 123" in chunks[0]
    assert answer.kind == "crisis"
