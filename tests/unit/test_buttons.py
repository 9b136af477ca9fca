"""Buttons under answers the model wrote, taps routed by payload, and "typing…" instead of
the hold text."""

from sprout.core.bot import Bot, BotConfig
from sprout.core.buttons import ANOTHER, DOWN, MORE, UP
from sprout.core.delivery import Channel, Delivery
from sprout.core.messages import Incoming
from sprout.core.prompts import Prompts
from sprout.core.routing import Intent, route
from sprout.core.specs import WHATSAPP
from sprout.core.store import Store
from tests.unit.doubles import ButtonRecorder, FakeIndicator, FakeLLM

USER = "whatsapp:+447700900001"
IDEA = "**Dino stomp**\nStomp and count each step.\nAreas: Mathematics"


def test_a_tap_is_routed_by_its_payload_not_its_label() -> None:
    assert route("Otra idea", ANOTHER).intent is Intent.ANOTHER
    assert route("anything at all", MORE).intent is Intent.MORE
    assert route("👍", "").argument == UP and route("👎🏾").argument == DOWN
    assert route("all ideas").intent is Intent.ALL_IDEAS
    assert route("👍 thanks, but why?").intent is Intent.CHAT


async def run(
    store: Store, prompts: Prompts, texts: list[str], model: FakeLLM, channel: Channel
) -> None:
    bot = Bot(model, prompts, store, BotConfig(retry_wait_s=0))
    # A hold text only where the indicator is tested (it needs time to show).
    hold_after_s = 0.05 if channel.indicator else 30.0
    delivery = Delivery(store, bot, {"whatsapp": channel}, hold_after_s=hold_after_s)
    for n, text in enumerate(texts):
        inbound = await store.record_inbound(Incoming("whatsapp", USER, text, f"SM{text}{n}"))
        assert inbound is not None
        await delivery.run(inbound)


async def test_answers_end_with_buttons_and_fixed_texts_and_ratings_do_not(
    store: Store, prompts: Prompts
) -> None:
    sender = ButtonRecorder()
    texts = ["Activities dinosaurs", "Explain rain", "👍", "help", "Another idea"]
    await run(store, prompts, texts, FakeLLM(IDEA), Channel(WHATSAPP, sender, buttons=sender))
    assert sender.buttons == {0: (ANOTHER, UP, DOWN), 1: (MORE, UP, DOWN), 4: (ANOTHER, UP, DOWN)}
    assert sender.sent[2] == prompts.text("feedback_thanks")


async def test_an_apology_gets_no_buttons(store: Store, prompts: Prompts) -> None:
    sender, model = ButtonRecorder(), FakeLLM(IDEA)
    model.failures = [0, 0]
    await run(store, prompts, ["Explain rain"], model, Channel(WHATSAPP, sender, buttons=sender))
    assert sender.sent == [prompts.text("apology")] and sender.buttons == {}


async def test_typing_instead_of_the_hold_text_unless_refused(
    store: Store, prompts: Prompts
) -> None:
    for works, expected_hold in ((True, False), (False, True)):
        sender, indicator = ButtonRecorder(), FakeIndicator(works=works)
        channel = Channel(WHATSAPP, sender, indicator=indicator)
        await run(store, prompts, [f"Explain rain {works}"], FakeLLM(IDEA, 0.03), channel)
        assert len(indicator.shown) == 1
        assert (prompts.text("hold") in sender.sent) is expected_hold
