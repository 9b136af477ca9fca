"""The decide stage: what a message asks for, with the commands carried out."""

from sprout.core.decide import Decide, Fixed, ForModel, Limits, Silent
from sprout.core.messages import Incoming, Media
from sprout.core.privacy import FORGOTTEN
from sprout.core.profile import Profile
from sprout.core.prompts import Prompts
from sprout.core.ratelimit import RateLimit
from sprout.core.routing import Intent
from sprout.core.specs import WHATSAPP
from sprout.core.store import Store, UserState
from sprout.core.turn import Ask, Turn

USER = "whatsapp:+447700900001"


def turn(
    text: str,
    *,
    first_contact: bool = False,
    opted_out: bool = False,
    inbound_id: int | None = None,
    unheard: bool = False,
    media: tuple[Media, ...] = (),
) -> Turn:
    incoming = Incoming("whatsapp", USER, text, "SM1", media=media)
    state = UserState({}, opted_out, first_contact, ())
    return Turn(Ask(incoming, WHATSAPP, inbound_id), incoming, state, Profile(), unheard=unheard)


async def test_a_question_goes_to_the_model_with_its_argument(
    store: Store, prompts: Prompts
) -> None:
    decide = Decide(store, prompts, Limits())
    decision = await decide(turn("Explain: why is the sky blue?"))
    assert decision == ForModel(Intent.EXPLAIN, "why is the sky blue?", None)
    assert decision.kind == "explain"


async def test_a_greeting_on_first_contact_gets_the_help_text(
    store: Store, prompts: Prompts
) -> None:
    decision = await Decide(store, prompts, Limits())(turn("hi", first_contact=True))
    assert isinstance(decision, Fixed) and decision.key == "help"


async def test_a_newcomers_question_goes_to_the_model_marked_as_their_first(
    store: Store, prompts: Prompts
) -> None:
    decide = Decide(store, prompts, Limits())
    decision = await decide(turn("what can we do on a rainy day?", first_contact=True))
    assert decision == ForModel(Intent.CHAT, "what can we do on a rainy day?", None, first=True)
    later = await decide(turn("what can we do on a rainy day?"))
    assert isinstance(later, ForModel) and not later.first
    explain = await decide(turn("explain rain", first_contact=True))
    assert isinstance(explain, ForModel) and not explain.first, "a command needs no introduction"


async def test_a_command_word_in_spanish_picks_the_fixed_texts_language(
    store: Store, prompts: Prompts
) -> None:
    decision = await Decide(store, prompts, Limits())(turn("ayuda"))
    assert decision == Fixed("help", "es")


async def test_an_opted_out_user_gets_silence_until_they_start_again(
    store: Store, prompts: Prompts
) -> None:
    decide = Decide(store, prompts, Limits())
    await store.set_opted_out(USER, True)
    assert isinstance(await decide(turn("Explain rain", opted_out=True)), Silent)
    decision = await decide(turn("start", opted_out=True))
    assert isinstance(decision, Fixed) and decision.key == "help"
    assert not (await store.user_state(USER, 10**9, frozenset())).opted_out


async def test_stop_opts_the_user_out(store: Store, prompts: Prompts) -> None:
    decision = await Decide(store, prompts, Limits())(turn("stop"))
    assert isinstance(decision, Fixed) and decision.key == "stopped"
    assert (await store.user_state(USER, 10**9, frozenset())).opted_out


async def test_forget_me_erases_all_but_the_asking_message(store: Store, prompts: Prompts) -> None:
    earlier = await store.record_inbound(Incoming("whatsapp", USER, "Explain rain", "SM0"))
    asking = await store.record_inbound(Incoming("whatsapp", USER, "forget me", "SM1"))
    await store.save_profile(USER, {"places": "outdoors"})
    assert earlier is not None and asking is not None
    decision = await Decide(store, prompts, Limits())(turn("forget me", inbound_id=asking))
    assert isinstance(decision, Fixed) and decision.kind == FORGOTTEN
    assert await store.load_job(earlier) is None
    assert await store.load_job(asking) is not None
    assert (await store.user_state(USER, 10**9, frozenset())).profile == {}


async def test_guards_come_before_the_model(store: Store, prompts: Prompts) -> None:
    decide = Decide(store, prompts, Limits(max_input_chars=10))
    assert await decide(turn("Explain " + "why " * 10)) == Fixed(
        "too_long", None, {"max_chars": "10"}
    )
    picture = (Media("https://example.org/p.jpg", "image/jpeg"),)
    assert await decide(turn("", media=picture)) == Fixed("media_only", None)
    assert await decide(turn("explain")) == Fixed("explain_empty", None)
    assert await decide(turn("", unheard=True)) == Fixed("voice_failed", None)


async def test_a_user_over_the_rate_limit_is_told_once_then_not_answered(
    store: Store, prompts: Prompts
) -> None:
    decide = Decide(store, prompts, Limits(rate_limit=RateLimit("2/minute")))
    decisions = [await decide(turn(f"Explain rain {n}")) for n in range(4)]
    assert [type(d).__name__ for d in decisions] == ["ForModel", "ForModel", "Fixed", "Silent"]
    assert isinstance(decisions[2], Fixed) and decisions[2].key == "slow_down"
    assert isinstance(await decide(turn("stop")), Fixed), "privacy commands always work"
