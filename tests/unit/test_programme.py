"""Opting in to regular ideas in plain words, and changing or ending that, as a parent sees
it: the confirmation says when, in their own time; settings shows it; stop and forget me end
it. Nothing here asks the model."""

from datetime import UTC, datetime, timedelta
from itertools import count

from sprout.core.bot import Bot
from sprout.core.buttons import IDEAS, UP
from sprout.core.delivery import Channel, Delivery
from sprout.core.messages import Incoming
from sprout.core.prompts import Prompts
from sprout.core.specs import WHATSAPP
from sprout.core.store import Store
from sprout.core.subscriptions import Subscriptions
from tests.unit.doubles import ButtonRecorder, FakeLLM

UK_PARENT = "whatsapp:+447911123456"
SPANISH_PARENT = "whatsapp:+34612345678"
TUESDAY_NOON = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
IDEA = "**Leaf hunt**\nFind three different leaves together.\nAreas: Understanding the World"
_ids = count()


async def say(bot: Bot, text: str, user: str = UK_PARENT, at: datetime = TUESDAY_NOON) -> str:
    message = Incoming("whatsapp", user, text, f"SM{next(_ids)}", received_at=at)
    return "\n\n".join(await bot.reply(message, WHATSAPP))


async def test_asking_for_an_idea_every_morning_subscribes_in_the_parents_time(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM()
    bot = Bot(model, prompts, store)
    reply = await say(bot, "Send me an idea every morning please")
    assert "every day at 09:00 (London time)" in reply
    assert "pause ideas" in reply and "stop ideas" in reply, "how to change it"
    subscription = await Subscriptions(store).get(UK_PARENT)
    assert subscription is not None
    assert subscription.next_due == datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    assert model.requests == []


async def test_a_spanish_number_gets_madrid_time_and_a_spanish_confirmation(
    prompts: Prompts, store: Store
) -> None:
    bot = Bot(FakeLLM(), prompts, store)
    reply = await say(bot, "mándame una idea cada mañana", SPANISH_PARENT)
    assert reply.startswith("¡Genial!") and "cada día a las 09:00 (hora de Madrid)" in reply
    subscription = await Subscriptions(store).get(SPANISH_PARENT)
    assert subscription is not None and subscription.next_due == datetime(
        2026, 12, 2, 8, 0, tzinfo=UTC
    )


async def test_settings_shows_the_ideas_and_the_changes_take_effect(
    prompts: Prompts, store: Store
) -> None:
    bot = Bot(FakeLLM(), prompts, store)
    assert "Regular ideas: off" in await say(bot, "settings")
    await say(bot, "weekly ideas on Saturdays and Wednesdays at 10am")
    assert "on Wednesdays and Saturdays at 10:00 (London time)" in await say(bot, "settings")
    assert "on Wednesdays at 10:00" in await say(bot, "less often")
    assert "paused" in await say(bot, "pause ideas")
    assert "paused" in await say(bot, "settings")
    assert "on Wednesdays at 10:00" in await say(bot, "resume ideas")
    assert "no more regular ideas" in await say(bot, "stop ideas")
    assert await Subscriptions(store).get(UK_PARENT) is None
    assert "not getting regular ideas" in await say(bot, "pause ideas")


async def test_stop_and_forget_me_end_the_ideas_at_once(prompts: Prompts, store: Store) -> None:
    bot = Bot(FakeLLM(), prompts, store)
    subscriptions = Subscriptions(store)
    await say(bot, "send me ideas every day at 7pm")
    await say(bot, "stop")
    assert await subscriptions.get(UK_PARENT) is None
    await say(bot, "start")
    await say(bot, "send me ideas every day at 7pm")
    due = await subscriptions.get(UK_PARENT)
    assert due is not None
    await subscriptions.record(due, "sent")
    await say(bot, "forget me")
    assert await subscriptions.get(UK_PARENT) is None
    assert await subscriptions.outcomes(UK_PARENT) == []


async def test_a_question_about_mornings_is_still_a_question(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM()
    await say(Bot(model, prompts, store), "what ideas can we do every morning?")
    assert len(model.requests) == 1, "the model answers it"
    assert await Subscriptions(store).get(UK_PARENT) is None


async def test_only_nudges_due_are_found_and_each_is_claimed_once(
    prompts: Prompts, store: Store
) -> None:
    bot = Bot(FakeLLM(), prompts, store)
    await say(bot, "send me an idea every morning")
    await say(bot, "weekly ideas please", user="whatsapp:+447911123457")
    subscriptions = Subscriptions(store)
    wednesday_morning = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    [due] = await subscriptions.due(wednesday_morning, limit=10)
    assert due.user_id == UK_PARENT
    moved = due.moved_on(due.next_due + timedelta(days=1) if due.next_due else None)
    assert await subscriptions.claim(due, moved)
    assert not await subscriptions.claim(due, moved), "someone else already moved it on"
    assert await subscriptions.due(wednesday_morning, limit=10) == []


async def test_saying_where_the_family_is_moves_the_ideas_to_their_clock(
    prompts: Prompts, store: Store
) -> None:
    bot = Bot(FakeLLM(), prompts, store)
    await say(bot, "send me an idea every morning")
    assert "every day at 09:00 (Madrid time)" in await say(bot, "we're in Madrid now")
    subscription = await Subscriptions(store).get(UK_PARENT)
    assert subscription is not None and subscription.next_due == datetime(
        2026, 12, 2, 8, 0, tzinfo=UTC
    )


async def test_a_place_in_a_question_is_part_of_the_question(
    prompts: Prompts, store: Store
) -> None:
    model = FakeLLM()
    bot = Bot(model, prompts, store)
    await say(bot, "send me an idea every morning")
    await say(bot, "we're in Madrid on holiday, what can we do with a toddler there?")
    assert len(model.requests) == 1


async def test_a_thumbs_up_offers_an_idea_every_morning_and_the_tap_subscribes(
    prompts: Prompts, store: Store
) -> None:
    sender = ButtonRecorder()
    channel = Channel(WHATSAPP, sender, buttons=sender)
    delivery = Delivery(store, Bot(FakeLLM(IDEA), prompts, store), {"whatsapp": channel})

    async def tap(text: str, payload: str = "") -> None:
        message = Incoming(
            "whatsapp", UK_PARENT, text, f"SM{next(_ids)}", received_at=TUESDAY_NOON,
            payload=payload,
        )  # fmt: skip
        inbound = await store.record_inbound(message)
        assert inbound is not None
        await delivery.run(inbound)

    await tap("Activities leaves")
    await tap("👍", UP)
    assert sender.sent[-1].startswith("Thanks! 🌱 Would you like an idea")
    assert sender.buttons[len(sender.sent) - 1] == (IDEAS,)
    await tap("💡 Every morning", IDEAS)
    assert "every day at 09:00 (London time)" in sender.sent[-1]
    assert len(sender.buttons) == 2, "no buttons under the confirmation"
    subscription = await Subscriptions(store).get(UK_PARENT)
    assert subscription is not None and subscription.next_due == datetime(
        2026, 12, 2, 9, 0, tzinfo=UTC
    )
    await tap("Activities leaves")
    await tap("👍", UP)
    assert sender.sent[-1] == prompts.text("feedback_thanks"), "offered once they have them"
