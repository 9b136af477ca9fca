import asyncio
from dataclasses import dataclass, field, replace

from sprout.core.bot import Bot, BotConfig
from sprout.core.chunking import chunk_markdown
from sprout.core.delivery import Channel, Delivery, InProcessDispatcher
from sprout.core.formatting import to_telegram_html, to_whatsapp
from sprout.core.messages import BLOCK_SEPARATOR, Incoming, Media, utf16_len
from sprout.core.prompts import Prompts
from sprout.core.specs import TELEGRAM, WHATSAPP
from sprout.core.store import Store
from sprout.core.tables import ChunkState
from tests.unit.doubles import FakeLLM, FakeTranscriber, RecordingSender, StoredMedia

PARAGRAPH = "Stomp like a dinosaur and count each giant step out loud together. " * 5
ANSWER = "\n\n".join(f"{n}. {PARAGRAPH.strip()}" for n in range(1, 9))


def incoming(text: str = "Activities dinosaurs", sid: str = "SM1", user: str = "+1") -> Incoming:
    return Incoming(channel="whatsapp", user_id=f"whatsapp:{user}", text=text, message_id=sid)


def delivery(
    store: Store, prompts: Prompts, model: FakeLLM, sender: RecordingSender, hold: float = 5.0
) -> Delivery:
    bot = Bot(model, prompts, store, BotConfig(retry_wait_s=0))
    return Delivery(store, bot, {"whatsapp": Channel(WHATSAPP, sender)}, hold_after_s=hold)


async def test_a_fast_answer_is_sent_in_order_without_a_hold(
    store: Store, prompts: Prompts
) -> None:
    sender = RecordingSender()
    inbound_id = await store.record_inbound(incoming())
    assert inbound_id is not None
    await delivery(store, prompts, FakeLLM(ANSWER), sender).run(inbound_id)
    assert prompts.text("hold") not in sender.sent
    assert len(sender.sent) > 1
    assert "".join("".join(sender.sent).split()) == "".join(ANSWER.split())
    job = await store.load_job(inbound_id)
    assert job is not None and job.done and job.answer_complete
    assert all(chunk.state is ChunkState.SENT for chunk in job.chunks)


async def test_first_chunk_goes_out_before_generation_ends(store: Store, prompts: Prompts) -> None:
    sender = RecordingSender()
    model = FakeLLM(ANSWER, delay_s=0.002)
    inbound_id = await store.record_inbound(incoming())
    assert inbound_id is not None
    task = asyncio.create_task(delivery(store, prompts, model, sender).run(inbound_id))
    while not sender.sent:  # noqa: ASYNC110 - polling what a user would see, at 1 ms
        await asyncio.sleep(0.001)
    assert not task.done()
    await task


async def test_a_slow_answer_gets_the_hold_message_first(store: Store, prompts: Prompts) -> None:
    sender = RecordingSender()
    model = FakeLLM("Short answer.", delay_s=0.1)
    inbound_id = await store.record_inbound(incoming("Explain rain"))
    assert inbound_id is not None
    await delivery(store, prompts, model, sender, hold=0.05).run(inbound_id)
    assert sender.sent == [prompts.text("hold"), "Short answer."]


async def test_a_duplicate_message_id_is_not_recorded_twice(store: Store) -> None:
    assert await store.record_inbound(incoming()) is not None
    assert await store.record_inbound(incoming()) is None


async def test_restart_sends_only_the_unsent_chunks_of_a_finished_answer(
    store: Store, prompts: Prompts
) -> None:
    inbound_id = await store.record_inbound(incoming())
    assert inbound_id is not None
    answer_id = await store.start_answer(inbound_id)
    first = await store.add_chunk(answer_id, 1, "one", "one")
    await store.add_chunk(answer_id, 2, "two", "two")
    await store.add_chunk(answer_id, 3, "three", "three")
    await store.mark_chunk(first, ChunkState.SENT, provider_id="SMx")
    await store.complete_answer(answer_id, "one\n\ntwo\n\nthree")
    sender, model = RecordingSender(), FakeLLM()
    await delivery(store, prompts, model, sender).run(inbound_id)
    assert sender.sent == ["two", "three"]
    assert model.requests == []


async def test_restart_of_an_unfinished_answer_continues_after_what_was_sent(
    store: Store, prompts: Prompts
) -> None:
    inbound_id = await store.record_inbound(incoming())
    assert inbound_id is not None
    answer_id = await store.start_answer(inbound_id)
    sent = await store.add_chunk(answer_id, 1, "*Part one*", "**Part one**")
    await store.mark_chunk(sent, ChunkState.SENT)
    await store.add_chunk(answer_id, 2, "generated, never sent", "generated, never sent")
    sender, model = RecordingSender(), FakeLLM("Part two.")
    await delivery(store, prompts, model, sender).run(inbound_id)
    assert sender.sent == ["Part two."]
    assert model.requests[0][-2] == {"role": "assistant", "content": "**Part one**"}
    job = await store.load_job(inbound_id)
    assert job is not None and [c.body for c in job.chunks] == ["*Part one*", "Part two."]


async def test_restart_after_the_first_piece_of_a_long_list_sends_only_the_rest(
    store: Store, prompts: Prompts
) -> None:
    long_list = "\n".join(f"{n}. {PARAGRAPH.strip()}" for n in range(1, 9))  # one block
    first, *rest = chunk_markdown(long_list, WHATSAPP)
    assert rest, "the list needs more than one message"
    inbound_id = await store.record_inbound(incoming())
    assert inbound_id is not None
    answer_id = await store.start_answer(inbound_id)
    sent = await store.add_chunk(answer_id, 1, first.text, first.source)
    await store.mark_chunk(sent, ChunkState.SENT)  # then the process died
    sender, model = RecordingSender(), FakeLLM(long_list, continues=True)
    await delivery(store, prompts, model, sender).run(inbound_id)
    whole = " ".join(to_whatsapp(long_list).text.split())
    assert " ".join(" ".join([first.text, *sender.sent]).split()) == whole, "nothing repeated"


async def test_a_permanent_send_failure_is_recorded_not_retried(
    store: Store, prompts: Prompts
) -> None:
    inbound_id = await store.record_inbound(incoming())
    assert inbound_id is not None
    sender = RecordingSender(fail_permanently=True)
    await delivery(store, prompts, FakeLLM(ANSWER), sender).run(inbound_id)
    job = await store.load_job(inbound_id)
    assert job is not None and job.done
    assert {chunk.state for chunk in job.chunks} == {ChunkState.FAILED}


async def test_jobs_run_in_order_per_user_and_in_parallel_across_users() -> None:
    log: list[tuple[str, int, str]] = []

    async def run(inbound_id: int) -> None:
        user = "a" if inbound_id < 100 else "b"
        log.append((user, inbound_id, "start"))
        await asyncio.sleep(0.01)
        log.append((user, inbound_id, "end"))

    dispatcher = InProcessDispatcher(run)
    for inbound_id in (1, 2, 3):
        dispatcher.dispatch("a", inbound_id)
    dispatcher.dispatch("b", 100)
    await dispatcher.close(grace_s=60)
    a_events = [(i, what) for user, i, what in log if user == "a"]
    assert a_events == [
        (1, "start"),
        (1, "end"),
        (2, "start"),
        (2, "end"),
        (3, "start"),
        (3, "end"),
    ]
    assert log.index(("b", 100, "start")) < log.index(("a", 1, "end"))


async def test_a_recovered_voice_note_is_still_a_voice_note(store: Store, prompts: Prompts) -> None:
    note = Incoming(
        channel="whatsapp",
        user_id="whatsapp:+1",
        text="",
        message_id="MM1",
        media=(Media("https://api.twilio.com/media/1", "audio/ogg"),),
    )
    inbound_id = await store.record_inbound(note)
    assert inbound_id is not None
    job = await store.load_job(inbound_id)
    assert job is not None and job.incoming.media == note.media
    sender = RecordingSender()
    await delivery(store, prompts, FakeLLM(), sender).run(inbound_id)
    assert sender.sent == [to_whatsapp(prompts.text("media_only")).text]


VOICE_URL = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"


def voice_note(sid: str = "MM1") -> Incoming:
    return Incoming("whatsapp", "whatsapp:+1", "", sid, media=(Media(VOICE_URL, "audio/ogg"),))


async def _answer_voice_note(
    store: Store, prompts: Prompts, model: FakeLLM, transcriber: FakeTranscriber, sid: str = "MM1"
) -> tuple[int, list[str]]:
    inbound_id = await store.record_inbound(voice_note(sid))
    assert inbound_id is not None
    bot = Bot(model, prompts, store, BotConfig(retry_wait_s=0, transcriber=transcriber))
    sender = RecordingSender()
    media = StoredMedia({VOICE_URL: b"OggS voice"})
    channel = Channel(WHATSAPP, sender, media=media)
    await Delivery(store, bot, {"whatsapp": channel}).run(inbound_id)
    return inbound_id, sender.sent


async def test_a_voice_note_is_answered_as_what_it_says(store: Store, prompts: Prompts) -> None:
    model, transcriber = FakeLLM("The moon seems to change shape because..."), FakeTranscriber()
    inbound_id, sent = await _answer_voice_note(store, prompts, model, transcriber)
    assert transcriber.heard == [(b"OggS voice", "audio/ogg")]
    heard = "🎤 _“Explain why the moon changes shape”_"
    assert sent == [f"{heard}\n\nThe moon seems to change shape because..."], "heard, then answer"
    [request] = model.requests
    assert request[-1]["content"].endswith("why the moon changes shape"), "routed as explain"
    job = await store.load_job(inbound_id)
    assert job is not None and job.incoming.text == transcriber.transcript, "kept as its text"


async def test_a_long_voice_note_is_quoted_whole_before_its_answer(
    store: Store, prompts: Prompts
) -> None:
    said = "Explain " + " ".join(f"why number {n} matters" for n in range(40))
    model = FakeLLM("Numbers help us count.")
    _, sent = await _answer_voice_note(store, prompts, model, FakeTranscriber(transcript=said))
    assert " ".join(sent).split() == f"🎤 _“{said}”_ Numbers help us count.".split()


async def test_a_voice_note_that_cannot_be_heard_gets_asked_again(
    store: Store, prompts: Prompts
) -> None:
    model = FakeLLM()
    _, sent = await _answer_voice_note(store, prompts, model, FakeTranscriber(fail=True))
    assert sent == [to_whatsapp(prompts.text("voice_failed")).text]
    assert not model.requests
    silence = FakeTranscriber(transcript="")
    _, sent = await _answer_voice_note(store, prompts, model, silence, sid="MM2")
    assert sent == [to_whatsapp(prompts.text("voice_failed")).text], "silence: nothing heard"


async def _interrupted_while_sending(store: Store) -> int:
    """An answer whose second chunk was handed to the channel when the process died."""
    inbound_id = await store.record_inbound(incoming())
    assert inbound_id is not None
    answer_id = await store.start_answer(inbound_id)
    first = await store.add_chunk(answer_id, 1, "one", "one")
    second = await store.add_chunk(answer_id, 2, "two", "two")
    await store.add_chunk(answer_id, 3, "three", "three")
    await store.mark_chunk(first, ChunkState.SENT)
    await store.mark_chunk(second, ChunkState.SENDING)
    await store.complete_answer(answer_id, "one\n\ntwo\n\nthree")
    return inbound_id


async def test_a_send_cut_off_by_a_crash_is_not_repeated_when_the_channel_has_it(
    store: Store, prompts: Prompts
) -> None:
    inbound_id = await _interrupted_while_sending(store)
    sender = RecordingSender(sent=["one", "two"])  # the channel did get "two"
    channel = Channel(WHATSAPP, sender, lookup=sender)
    bot = Bot(FakeLLM(), prompts, store)
    await Delivery(store, bot, {"whatsapp": channel}).run(inbound_id)
    assert sender.sent == ["one", "two", "three"]


async def test_a_send_cut_off_by_a_crash_is_repeated_when_unknown(
    store: Store, prompts: Prompts
) -> None:
    inbound_id = await _interrupted_while_sending(store)
    sender = RecordingSender()
    await delivery(store, prompts, FakeLLM(), sender).run(inbound_id)
    assert sender.sent == ["two", "three"]


@dataclass
class SlowSender(RecordingSender):
    """A channel that takes a while per request, like a paced Telegram edit."""

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        await asyncio.sleep(0.05)
        return await super().send(incoming, text, joint)


async def test_a_coalescing_channel_gets_what_is_ready_in_one_send(
    store: Store, prompts: Prompts
) -> None:
    inbound_id = await store.record_inbound(incoming())
    assert inbound_id is not None
    sender = SlowSender()
    spec = replace(WHATSAPP, first_min=1, min_len=1, max_messages=None)  # as Telegram
    answer = "\n\n".join(f"Paragraph {n}: splash in the puddles together." for n in range(30))
    bot = Bot(FakeLLM(answer), prompts, store)
    channel = Channel(spec, sender, hold=False, coalesce=True)
    await Delivery(store, bot, {"whatsapp": channel}).run(inbound_id)
    job = await store.load_job(inbound_id)
    assert job is not None
    assert len(sender.sent) < len(job.chunks), "chunks ready together went out together"
    assert all(utf16_len(text) <= 1600 for text in sender.sent)
    assert "".join("".join(sender.sent).split()) == "".join(answer.split())
    assert {chunk.state for chunk in job.chunks} == {ChunkState.SENT}


@dataclass
class GrowingSender(RecordingSender):
    """One message that grows, as Telegram's: each text joins the last by its joint."""

    shown: str = ""

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        self.shown += (joint if self.shown else "") + text
        return await super().send(incoming, text, joint)


async def test_a_growing_message_joins_chunks_as_the_answer_reads(
    store: Store, prompts: Prompts
) -> None:
    inbound_id = await store.record_inbound(incoming())
    assert inbound_id is not None
    sender = GrowingSender()
    spec = replace(TELEGRAM, first_min=1, min_len=1)
    sentences = [f"Sentence {n} is about **puddles** and rain." for n in range(12)]
    answer = "Intro:\n\n- one\n- two\n\n" + " ".join(sentences)
    bot = Bot(FakeLLM(answer, delay_s=0.002), prompts, store)
    channel = Channel(spec, sender, hold=False, coalesce=True)
    await Delivery(store, bot, {"whatsapp": channel}).run(inbound_id)
    assert len(sender.sent) > 2, "the message grew as the answer was written"
    assert any(text.startswith("Sentence 1 ") for text in sender.sent), "by sentences"
    assert sender.shown == to_telegram_html(answer).text


async def test_a_job_that_fails_for_a_moment_is_run_again() -> None:
    runs: list[int] = []

    async def flaky(inbound_id: int) -> None:
        runs.append(inbound_id)
        if len(runs) == 1:
            raise RuntimeError("database is locked")

    dispatcher = InProcessDispatcher(flaky, retry_wait_s=0)
    dispatcher.dispatch("a", 7)
    await dispatcher.close(grace_s=60)
    assert runs == [7, 7]


async def test_a_job_cancelled_by_a_stop_is_not_run_again() -> None:
    runs: list[int] = []
    started = asyncio.Event()

    async def never_answers(inbound_id: int) -> None:
        runs.append(inbound_id)
        if len(runs) == 1:  # a run again would be let through, to be seen here
            started.set()
            await asyncio.Event().wait()

    dispatcher = InProcessDispatcher(never_answers, retry_wait_s=0)
    dispatcher.dispatch("a", 7)
    await started.wait()
    await dispatcher.close(grace_s=0)
    assert runs == [7], "cancelled, it resumes at the next start-up, not in a stopping process"
    assert dispatcher.busy == 0


async def test_many_jobs_writing_at_once_all_finish(store: Store, prompts: Prompts) -> None:
    sender = RecordingSender()
    deliver = delivery(store, prompts, FakeLLM("Short answer."), sender)
    dispatcher = InProcessDispatcher(deliver.run)
    for n in range(200):
        inbound_id = await store.record_inbound(
            incoming("Explain rain", sid=f"SM{n}", user=f"+{n}")
        )
        assert inbound_id is not None
        dispatcher.dispatch(f"+{n}", inbound_id)
    await dispatcher.close(grace_s=60)
    assert len(sender.sent) == 200
    assert await store.unfinished() == []


@dataclass
class CheckingSender(RecordingSender):
    """Looks in the store at each send: what is handed over must already be recorded so."""

    store: Store | None = None
    inbound_id: int = 0
    problems: list[str] = field(default_factory=list)

    async def send(self, incoming: Incoming, text: str, joint: str = BLOCK_SEPARATOR) -> str:
        assert self.store is not None
        job = await self.store.load_job(self.inbound_id)
        assert job is not None
        if job.done:
            self.problems.append(f"done before sending {text!r}")
        if not any(c.body == text and c.state is ChunkState.SENDING for c in job.chunks):
            self.problems.append(f"{text!r} not recorded as sending")
        await asyncio.sleep(0.005)  # a real send takes a while: generation finishes meanwhile
        return await super().send(incoming, text, joint)


async def test_every_send_is_recorded_as_sending_first_and_the_job_finishes_after(
    store: Store, prompts: Prompts
) -> None:
    for n, hold in enumerate((5.0, 0.001)):
        inbound_id = await store.record_inbound(incoming(sid=f"SM{n}", user=f"+{n}"))
        assert inbound_id is not None
        sender = CheckingSender(store=store, inbound_id=inbound_id)
        model = FakeLLM(ANSWER, delay_s=0.0005 * n)
        await delivery(store, prompts, model, sender, hold=hold).run(inbound_id)
        assert sender.problems == []
        job = await store.load_job(inbound_id)
        assert job is not None and job.done and job.answer_complete
        assert all(chunk.state is ChunkState.SENT for chunk in job.chunks)
        assert [c.body for c in job.chunks] == sender.sent


async def test_unfinished_messages_by_user_and_their_count(store: Store) -> None:
    first = await store.record_inbound(incoming(sid="SM1", user="+1"))
    second = await store.record_inbound(incoming(sid="SM2", user="+2"))
    third = await store.record_inbound(incoming(sid="SM3", user="+1"))
    assert first is not None and second is not None and third is not None
    assert await store.unfinished_count() == 3
    assert await store.unfinished("whatsapp:+1") == [(first, "whatsapp:+1"), (third, "whatsapp:+1")]
    await store.finish(first)
    assert await store.unfinished("whatsapp:+1") == [(third, "whatsapp:+1")]
    assert await store.unfinished("whatsapp:+3") == []
    assert await store.unfinished_count() == 2
