"""Bounds on an answer: a rambling, cut-off or looping model still gives a parent a short,
clean answer and a way to ask for the rest."""

from dataclasses import replace

from sprout.core.bot import Bot
from sprout.core.bounds import REPEATS_TO_STOP, BoundedChunker, clean_end
from sprout.core.messages import Incoming, utf16_len
from sprout.core.prompts import Prompts
from sprout.core.specs import TELEGRAM_STREAMING, WHATSAPP
from sprout.core.store import Store
from tests.unit.doubles import FakeLLM

OFFER = "Write *more* for the rest."
IDEAS = "\n\n".join(
    f"{n}. **Idea {n}**: stomp like a dinosaur round the garden, counting each big step. "
    "Then hide toy dinosaurs in the sand pit and dig them out with a spoon. " * 3
    for n in range(1, 21)
)


def message(text: str) -> Incoming:
    return Incoming("whatsapp", "whatsapp:+447700900001", text, "SM1")


def streamed(writer: BoundedChunker, text: str, truncated: bool = False) -> list[str]:
    out = []
    for start in range(0, len(text), 5):
        out += [c.text for c in writer.feed(text[start : start + 5])]
        if writer.stopped:
            break
    return out + [c.text for c in writer.finish(truncated)]


def test_a_clean_point_is_after_a_line_or_a_finished_sentence() -> None:
    assert clean_end("One. Two is still going") == len("One. ")
    assert clean_end("A list:\n- half an it") == len("A list:\n")
    assert clean_end('She said "stop!" and then') == len('She said "stop!" ')
    assert clean_end("nothing finished yet") == 0


def test_a_long_answer_takes_at_most_the_channels_messages_and_offers_the_rest() -> None:
    writer = BoundedChunker(WHATSAPP, OFFER)
    messages = streamed(writer, IDEAS)
    assert len(messages) == WHATSAPP.max_messages
    assert writer.stopped, "the model is told to stop"
    assert messages[-1].endswith("Write _more_ for the rest.")
    assert all(utf16_len(text) <= 1600 for text in messages)


def test_an_answer_within_the_budget_is_whole_and_offers_nothing() -> None:
    short = "Rain comes from clouds.\n\nThe drops get heavy and fall."
    messages = streamed(BoundedChunker(WHATSAPP, OFFER), short)
    assert " ".join(messages).split() == short.split()
    assert "more" not in " ".join(messages)


def test_a_channel_without_a_budget_gets_everything() -> None:
    pieces = streamed(BoundedChunker(TELEGRAM_STREAMING, OFFER), IDEAS)
    shown = "".join(pieces)
    assert "Idea 20" in shown and "more" not in shown


def test_messages_sent_before_a_crash_count_against_the_budget() -> None:
    messages = streamed(BoundedChunker(WHATSAPP, OFFER, already_sent=3), IDEAS)
    assert len(messages) == 1 and messages[0].endswith("for the rest.")


def test_an_answer_cut_at_max_tokens_ends_at_its_last_sentence_with_the_offer() -> None:
    text = "Clouds are made of drops. The drops join and get heavy. Then they fa"
    messages = streamed(BoundedChunker(WHATSAPP, OFFER), text, truncated=True)
    joined = " ".join(messages)
    assert "fa" not in joined.split() and joined.startswith("Clouds are made of drops.")
    assert "get heavy." in joined and joined.endswith("Write _more_ for the rest.")


def test_a_model_repeating_itself_is_stopped() -> None:
    line = "Let's count the dinosaurs together!"
    looping = "Here we go.\n\n" + "\n\n".join([line] * 50)
    writer = BoundedChunker(replace(WHATSAPP, max_messages=None), OFFER)
    messages = streamed(writer, looping)
    assert writer.stopped
    assert " ".join(messages).count(line) < REPEATS_TO_STOP


async def test_each_kind_of_answer_has_its_token_limit(prompts: Prompts, store: Store) -> None:
    model = FakeLLM("Short answer.")
    bot = Bot(model, prompts, store)
    await store.record_inbound(message("hi"))  # not a first contact: chat goes to the model
    for text in ("Explain rain", "Activities rain", "what about snow?", "all ideas"):
        await bot.reply(message(text), WHATSAPP)
    assert model.max_tokens == [
        prompts.explain.max_tokens,
        prompts.activity_one.max_tokens,  # one idea at a time on a messaging channel
        prompts.chat.max_tokens,
        prompts.activities.max_tokens,  # the whole list
    ]


async def test_a_bot_answer_cut_off_by_the_model_offers_the_rest(
    prompts: Prompts, store: Store
) -> None:
    words = " ".join(f"Drop {n} falls." for n in range(400))
    model = FakeLLM(words)
    model.honours_max_tokens = True
    chunks = await Bot(model, prompts, store).reply(message("Explain rain"), WHATSAPP)
    assert chunks[-1].endswith("Write _more_ for the rest.")
    assert chunks[-1].rstrip().split("\n")[0].endswith("falls."), "cut at a sentence end"


def test_a_line_that_recurs_in_a_list_is_not_a_loop() -> None:
    ideas = "\n\n".join(
        f"**Idea {n}**\nHunt for dinosaur shapes.\nAreas: Communication and Language; Mathematics"
        for n in range(12)
    )
    writer = BoundedChunker(replace(WHATSAPP, max_messages=None), OFFER)
    messages = streamed(writer, ideas)
    assert not writer.stopped
    assert "Idea 11" in messages[-1]


def test_a_paragraph_written_again_and_again_is_a_loop() -> None:
    paragraph = "**Stomp**\nStomp like a dinosaur.\nAreas: Physical Development"
    writer = BoundedChunker(replace(WHATSAPP, max_messages=None), OFFER)
    streamed(writer, "\n\n".join([paragraph] * 10))
    assert writer.stopped
