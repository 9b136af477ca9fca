""" "Forget me" has one owner: the rest of the user's rows go once the confirmation is sent."""

from sprout.core.messages import Incoming
from sprout.core.privacy import FORGOTTEN, Forgetting
from sprout.core.store import Store

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
