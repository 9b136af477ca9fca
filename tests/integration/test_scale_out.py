"""Several web and worker processes on real PostgreSQL and Redis: nothing lost, nothing twice,
each user's answers in order — through worker crashes and a Redis restart."""

from __future__ import annotations

import asyncio
import itertools
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from sprout.core.formatting import to_whatsapp
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.scripted import message_text, scripted
from tests.fakes.telegram_server import FakeTelegram
from tests.fakes.twilio_server import FakeTwilio
from tests.integration.conftest import USER, SproutServer
from tests.integration.test_serve import assert_private, json_lines
from tests.integration.test_telegram import telegram_env
from tests.integration.test_whatsapp import ACTIVITIES, answer_messages, squashed, wait_for_text
from tests.services import RedisServer

pytestmark = pytest.mark.integration

QUESTION = re.compile(r"q-\d+-\d+")
_sids = itertools.count(1)
_sid_lock = threading.Lock()


def next_sid() -> str:
    with _sid_lock:
        return f"SM{next(_sids):032x}"


def echo(request: dict[str, Any]) -> str:
    """Answers name the question they answer, so order and duplicates can be checked. Asked to
    continue an answer (a worker lost its lease mid-job), it gives the rest, as a model would."""
    asked = [message_text(m) for m in request["messages"] if m["role"] == "user"]
    question = next(found[0] for text in reversed(asked) if (found := QUESTION.findall(text)))
    return scripted(f"Answer to {question}.")(request)


@dataclass
class Cluster:
    webs: list[SproutServer]
    workers: list[SproutServer]
    started: list[SproutServer] = field(default_factory=list)

    def send(self, body: str, sender: str, web: int = 0) -> httpx.Response:
        server = self.webs[web % len(self.webs)]
        response = server.post(server.form(body, sid=next_sid(), sender=sender))
        assert response.status_code == 200, response.text
        return response

    def busy_worker(self, timeout: float = 10) -> SproutServer:
        """The worker that started a job (from its own log)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for worker in self.workers:
                if '"job_started"' in worker.log():
                    return worker
            time.sleep(0.05)
        raise AssertionError("no worker started the job")


@pytest.fixture
def cluster_factory(
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    tmp_path: Path,
    postgres_url: str,
    redis_server: RedisServer,
) -> Iterator[Callable[..., Cluster]]:
    started: list[SproutServer] = []

    def make(webs: int = 2, workers: int = 2, **extra_env: str) -> Cluster:
        env = {
            "DATABASE_URL": postgres_url,
            "REDIS_URL": redis_server.url,
            # Short enough for a test to see a dead worker's job move on.
            "SPROUT_JOB_LEASE_S": "2",
            "SPROUT_SWEEP_S": "1",
            **extra_env,
        }

        def server(role: str) -> SproutServer:
            process = SproutServer(fake_openai, fake_twilio, tmp_path, env, role=role)
            started.append(process)
            process.start()
            return process

        return Cluster(
            [server("serve") for _ in range(webs)], [server("worker") for _ in range(workers)]
        )

    yield make
    for process in started:
        process.stop()


def assert_each_answered_once_in_order(
    fake_twilio: FakeTwilio, users: list[str], per_user: int, timeout: float
) -> None:
    """User i's n-th message was `explain q-i-n`: every one answered once, in that order."""
    deadline = time.monotonic() + timeout
    while len(answer_messages(fake_twilio)) < len(users) * per_user:
        assert time.monotonic() < deadline, [m.body for m in answer_messages(fake_twilio)]
        time.sleep(0.05)
    time.sleep(1.0)  # a duplicate would arrive now
    by_user: dict[str, list[str]] = {}
    answers = answer_messages(fake_twilio)
    for message in answers:
        by_user.setdefault(message.to, []).append(message.body)
    assert len(answers) == len(users) * per_user
    for index, user in enumerate(users):
        assert by_user[user] == [f"Answer to q-{index}-{n}." for n in range(per_user)]


def test_two_webs_and_two_workers_answer_200_messages_once_each_in_order(
    cluster_factory: Callable[..., Cluster], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply(echo)
    fake_openai.set_speed(ttft=0.05, tokens_per_s=400)
    # No worker dies here: a lease long enough that a loaded machine's pauses do not pass a
    # user to the other worker between a send and its record (a repeat the lease cannot rule
    # out; the stall tests below cover that path). Every message counted is an answer: on a
    # loaded machine one can take longer than the default 5 s before the hold message.
    cluster = cluster_factory(SPROUT_JOB_LEASE_S="10", SPROUT_HOLD_AFTER_S="60")
    users = [f"whatsapp:+4477009{n:05d}" for n in range(50)]

    def converse(user_index: int) -> None:
        # One user types their messages one after another, as a person does.
        for n in range(4):
            cluster.send(f"explain q-{user_index}-{n}", users[user_index], web=user_index + n)

    with ThreadPoolExecutor(max_workers=25) as pool:
        list(pool.map(converse, range(50)))
    assert_each_answered_once_in_order(fake_twilio, users, per_user=4, timeout=120)


EXPECTED_ACTIVITIES = squashed(to_whatsapp(ACTIVITIES).text)


def answering_slowly(
    cluster_factory: Callable[..., Cluster], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> tuple[Cluster, SproutServer]:
    """1 web + 2 workers, one long answer under way: the cluster and the worker writing it."""
    fake_openai.set_reply(scripted(ACTIVITIES))
    fake_openai.set_speed(ttft=0.0, tokens_per_s=150)
    cluster = cluster_factory(webs=1, workers=2)
    cluster.send("Activities dinosaurs", "whatsapp:+447700900123")
    fake_twilio.wait_for_messages(1, timeout=15)
    return cluster, cluster.busy_worker()


def assert_whole_and_nothing_twice(bodies: list[str]) -> None:
    assert squashed("".join(bodies)) == EXPECTED_ACTIVITIES
    assert len(bodies) == len(set(bodies)), "a chunk was sent twice"


def test_a_worker_killed_mid_answer_is_replaced_and_nothing_is_lost_or_repeated(
    cluster_factory: Callable[..., Cluster], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    cluster, victim = answering_slowly(cluster_factory, fake_openai, fake_twilio)
    victim.kill()
    delivered_before = len(fake_twilio.messages)
    fake_openai.set_speed(ttft=0.0, tokens_per_s=5000)
    messages = wait_for_text(fake_twilio, EXPECTED_ACTIVITIES, timeout=45)
    survivor = next(worker for worker in cluster.workers if worker is not victim)
    assert '"job_started"' in survivor.log()
    assert delivered_before < len(messages)
    assert_whole_and_nothing_twice([m.body for m in messages])


def test_a_worker_stalled_past_its_lease_stops_and_its_successor_sends_nothing_twice(
    cluster_factory: Callable[..., Cluster], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    _, stalled = answering_slowly(cluster_factory, fake_openai, fake_twilio)
    stalled.pause()
    try:
        fake_openai.set_speed(ttft=0.0, tokens_per_s=5000)
        wait_for_text(fake_twilio, EXPECTED_ACTIVITIES, timeout=45)
    finally:
        stalled.resume()
    deadline = time.monotonic() + 10
    while '"lease_lost"' not in stalled.log():
        assert time.monotonic() < deadline, "the stalled worker did not notice"
        time.sleep(0.05)
    time.sleep(1.0)  # anything it still sent would arrive now
    assert_whole_and_nothing_twice([m.body for m in answer_messages(fake_twilio)])


def test_a_redis_restart_loses_no_accepted_message(
    cluster_factory: Callable[..., Cluster],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    redis_server: RedisServer,
) -> None:
    fake_openai.set_reply(echo)
    cluster = cluster_factory()
    users = [f"whatsapp:+4477008{n:05d}" for n in range(10)]
    for index, user in enumerate(users):
        cluster.send(f"explain q-{index}-0", user, web=index)
    redis_server.kill()  # no persistence: the queue and everything in it are gone
    for index, user in enumerate(users):
        cluster.send(f"explain q-{index}-1", user, web=index)  # accepted while Redis is down
    redis_server.start()
    for index, user in enumerate(users):
        cluster.send(f"explain q-{index}-2", user, web=index)
    assert_each_answered_once_in_order(fake_twilio, users, per_user=3, timeout=60)


def test_model_and_twilio_faults_are_retried_then_apologised_for_never_silent(
    cluster_factory: Callable[..., Cluster], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply(echo)
    cluster = cluster_factory(webs=1, workers=2, SPROUT_MODEL_TIMEOUT_S="2")
    fake_openai.fail_next(429, times=1, retry_after=0.1)
    fake_openai.fail_next(500, times=1)
    fake_openai.hang_next(60, times=1)  # past the client's timeout
    fake_twilio.fail_next(429, times=1, retry_after=0.1)
    fake_twilio.fail_next(500, times=1)
    cluster.send("explain q-1-0", "whatsapp:+447700900201")
    deadline = time.monotonic() + 60
    while "Answer to q-1-0." not in [m.body for m in fake_twilio.messages]:
        assert time.monotonic() < deadline, [m.body for m in fake_twilio.messages]
        time.sleep(0.05)
    # The fake applies a hang and a failure to the same request: a timeout (its late 429
    # never read), a 500, then the answer.
    assert len(fake_openai.requests) == 3
    fake_openai.fail_next(500, times=1000)
    cluster.send("explain q-2-0", "whatsapp:+447700900202")
    [apology] = fake_twilio.wait_for_messages(1, timeout=60, to="whatsapp:+447700900202")
    assert "Sorry" in apology.body


def test_health_and_metrics_report_the_queue_and_its_dependencies(
    cluster_factory: Callable[..., Cluster],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    redis_server: RedisServer,
) -> None:
    fake_openai.set_reply(echo)
    cluster = cluster_factory(webs=1, workers=1)
    web, worker = cluster.webs[0], cluster.workers[0]
    health = httpx.get(f"{web.url}/healthz").json()
    assert health["database"] == "ok" and health["redis"] == "ok" and health["jobs"] == "redis"
    cluster.send("explain q-3-0", "whatsapp:+447700900301")
    fake_twilio.wait_for_messages(1, timeout=20)
    scraped = httpx.get(f"{worker.url}/metrics").text
    assert 'sprout_job_seconds_count{channel="whatsapp"} 1.0' in scraped
    assert 'sprout_model_seconds_count{phase="total"} 1.0' in scraped
    assert "sprout_queue_depth 0.0" in httpx.get(f"{web.url}/metrics").text
    redis_server.kill()
    down = httpx.get(f"{web.url}/healthz", timeout=10)
    assert down.status_code == 503
    assert down.json()["database"] == "ok" and down.json()["redis"].startswith("unreachable")


def test_the_rate_limit_is_shared_by_all_processes_with_one_notice(
    cluster_factory: Callable[..., Cluster], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply(echo)
    cluster = cluster_factory(SPROUT_RATE_LIMIT="3/minute")
    user = "whatsapp:+447700900401"
    for n in range(7):
        cluster.send(f"explain q-4-{n}", user, web=n)
    fake_twilio.wait_for_messages(4, timeout=30)
    time.sleep(2.0)  # anything more (a second notice, a fourth answer) would arrive now
    bodies = [m.body for m in fake_twilio.messages]
    assert bodies[:3] == [f"Answer to q-4-{n}." for n in range(3)]
    assert len(bodies) == 4 and "faster than I can answer" in bodies[3]


def test_a_worker_stopped_mid_answer_finishes_it_before_exiting(
    cluster_factory: Callable[..., Cluster], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply(scripted(ACTIVITIES))
    fake_openai.set_speed(ttft=0.0, tokens_per_s=400)
    cluster = cluster_factory(webs=1, workers=1)
    cluster.send("Activities dinosaurs", "whatsapp:+447700900501")
    fake_twilio.wait_for_messages(1, timeout=15)
    cluster.workers[0].stop()  # SIGTERM, as Heroku sends before a restart
    expected = squashed(to_whatsapp(ACTIVITIES).text)
    assert squashed("".join(m.body for m in answer_messages(fake_twilio))) == expected


def test_telegram_messages_go_through_the_workers_too(
    fake_telegram: FakeTelegram,  # first: it must outlive the processes
    cluster_factory: Callable[..., Cluster],
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.set_reply("Thunder is the sound lightning makes. ⚡")
    cluster = cluster_factory(webs=1, workers=2, **telegram_env(fake_telegram))
    fake_telegram.push_text(7, "/explain thunder")
    # The answer grows by edits, a sentence at a time: wait for the whole of it.
    whole = "Thunder is the sound lightning makes. ⚡"
    fake_telegram.wait_for(lambda: [m.text for m in fake_telegram.messages(7)] == [whole], 20)
    [answer] = fake_telegram.messages(7)
    assert answer.text == "Thunder is the sound lightning makes. ⚡"
    assert fake_telegram.calls_to("getUpdates"), "the web process polls"
    assert any('"job_started"' in worker.log() for worker in cluster.workers)
    assert '"job_started"' not in cluster.webs[0].log()


def test_web_and_worker_logs_are_json_lines_with_no_private_text(
    cluster_factory: Callable[..., Cluster], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    fake_openai.set_reply("Surface tension pulls them round.")
    cluster = cluster_factory(webs=1, workers=1)
    [web], [worker] = cluster.webs, cluster.workers
    cluster.send("Explain why bubbles are round", USER)
    fake_twilio.wait_for_messages(1, timeout=20)
    web.stop()
    worker.stop()
    assert "whatsapp_inbound" in [event["event"] for event in json_lines(web.log())]
    events = json_lines(worker.log())
    assert "job_done" in [event["event"] for event in events]
    assert any(event["logger"].startswith("taskiq") for event in events), "taskiq's, as JSON"
    for log in (web.log(), worker.log()):
        assert_private(log, "bubbles", "tension", fake_twilio.auth_token, "test-key")


def test_a_worker_stopped_while_the_model_hangs_exits_within_its_grace_and_the_answer_follows(
    cluster_factory: Callable[..., Cluster], fake_openai: FakeOpenAI, fake_twilio: FakeTwilio
) -> None:
    grace_s = 2
    cluster = cluster_factory(
        webs=1, workers=1, SPROUT_SHUTDOWN_GRACE_S=str(grace_s), SPROUT_HOLD_AFTER_S="60"
    )
    fake_openai.set_reply(echo)
    fake_openai.hang_next(600)  # no first token for ten minutes
    cluster.send("explain q-6-0", "whatsapp:+447700900601")
    fake_openai.wait_for_requests(1, timeout=15)
    worker = cluster.workers[0]
    worker.interrupt(signal.SIGTERM, within_s=grace_s + 10)  # 10: a generous margin
    assert "Traceback" not in worker.log(), worker.log()[-3000:]
    assert fake_twilio.messages == []

    worker.start()  # the cut-off job is queued again once its lease is over
    [answer] = fake_twilio.wait_for_messages(1, timeout=30)
    assert answer.body == "Answer to q-6-0."
    time.sleep(1.0)  # a second answer would arrive now
    assert len(fake_twilio.messages) == 1


NUDGE_IDEA = "**Leaf hunt** 🍂\nFind three different leaves together and line them up by size."


def test_two_workers_send_each_due_idea_exactly_once_even_when_one_is_killed(
    cluster_factory: Callable[..., Cluster],
    fake_openai: FakeOpenAI,
    fake_twilio: FakeTwilio,
    postgres_url: str,
) -> None:
    cluster = cluster_factory(webs=1, workers=2, SPROUT_NUDGE_EVERY_S="0.2")
    parents = [f"whatsapp:+4479111{n:05d}" for n in range(30)]
    now = datetime.now(ZoneInfo("Europe/London")).strftime("%H:%M")
    for parent in parents:
        cluster.send(f"send me an idea every day at {now}", parent)
    fake_twilio.wait_for_messages(len(parents), timeout=30)  # the confirmations
    fake_openai.set_reply(NUDGE_IDEA)
    fake_openai.set_speed(ttft=0.3, tokens_per_s=40)  # ideas still being written at the kill
    asyncio.run(make_all_due(postgres_url))
    victim = cluster.busy_worker(timeout=20)
    victim.kill()
    fake_twilio.wait_for_messages(2 * len(parents), timeout=60)
    time.sleep(2.0)  # a repeat would arrive now
    ideas = [m.to for m in fake_twilio.messages if "Leaf hunt" in m.body]
    assert sorted(ideas) == sorted(parents), "every parent got their idea, once"


async def make_all_due(database_url: str) -> None:
    engine = create_async_engine(database_url)
    async with engine.begin() as connection:
        moved = "UPDATE subscriptions SET next_due = now() - interval '1 minute'"
        await connection.execute(text(moved))
    await engine.dispose()
