""" "Forget me" has one owner: the rest of the user's rows go once the confirmation is sent."""

from sqlalchemy import func, select

from sprout.core.messages import Incoming
from sprout.core.privacy import FORGOTTEN, Forgetting
from sprout.core.store import Store
from sprout.core.tables import FeedbackRow

USER = "whatsapp:+447700900001"


async def test_only_the_confirmation_of_forget_me_erases_the_asking_message(store: Store) -> None:
    asking = await store.record_inbound(Incoming("whatsapp", USER, "forget me", "SM1"))
    assert asking is not None
    forgetting = Forgetting(store)
    await forgetting.asked(USER, asking)
    assert await store.load_job(asking) is not None, "kept until the confirmation is out"
    assert not await forgetting.after_answer(USER, "explain")
    assert await store.load_job(asking) is not None
    assert await forgetting.after_answer(USER, FORGOTTEN)
    assert await store.load_job(asking) is None


async def test_forget_me_erases_ideas_and_feedback(store: Store) -> None:
    other = "whatsapp:+447700900002"
    asked = await store.record_inbound(Incoming("whatsapp", USER, "Activities dinosaurs", "SM1"))
    assert asked is not None
    answer = await store.start_answer(asked)
    await store.complete_answer(answer, "**Dino stomp**", "activities")
    await store.add_idea(USER, "Dinosaurs!", "Dino stomp")
    await store.add_idea(other, "dinosaurs", "Fossil dig")
    rated = await store.add_feedback(USER, asked + 1, "up", frozenset({"activities"}))
    assert rated == "activities"
    assert await store.ideas(USER, "dinosaurs") == ["Dino stomp"]
    assert await store.last_topic(USER) == "dinosaurs"
    forgetting = Forgetting(store)
    await forgetting.asked(USER, None)
    assert await store.ideas(USER, "dinosaurs") == []
    assert await store.last_topic(USER) is None
    assert await store.ideas(other, "Dinosaurs") == ["Fossil dig"], "only the asker's go"
    async with store.engine.connect() as connection:
        left = await connection.scalar(select(func.count()).select_from(FeedbackRow))
    assert left == 0
