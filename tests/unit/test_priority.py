import asyncio

from sprout.core.priority import AckFirst

LATE_S = 0.05


async def step(ack_first: AckFirst, log: list[str], name: str) -> None:
    await ack_first.turn()
    log.append(name)


async def test_answer_work_goes_on_while_requests_are_acknowledged_in_time() -> None:
    ack_first = AckFirst(late_s=LATE_S)
    log: list[str] = []
    with ack_first.acknowledging():
        await asyncio.wait_for(step(ack_first, log, "step"), timeout=LATE_S)
    assert log == ["step"]


async def test_answer_work_waits_for_a_request_that_is_late_then_goes_on() -> None:
    ack_first = AckFirst(late_s=LATE_S, max_wait_s=10)
    log: list[str] = []
    with ack_first.acknowledging():
        await asyncio.sleep(LATE_S * 2)  # the request is late
        waiting = asyncio.create_task(step(ack_first, log, "step"))
        await asyncio.sleep(0.2)
        assert log == []
    await asyncio.wait_for(waiting, timeout=1)
    assert log == ["step"]


async def test_answer_work_never_waits_longer_than_the_limit() -> None:
    ack_first = AckFirst(late_s=0, max_wait_s=0.1)
    log: list[str] = []
    with ack_first.acknowledging():
        await asyncio.sleep(0.01)
        await asyncio.wait_for(step(ack_first, log, "step"), timeout=1)
    assert log == ["step"]


async def test_waiting_steps_go_in_arrival_order() -> None:
    ack_first = AckFirst(late_s=0, max_wait_s=10)
    log: list[str] = []
    with ack_first.acknowledging():
        steps = [asyncio.create_task(step(ack_first, log, str(n))) for n in range(3)]
        await asyncio.sleep(0.05)
    await asyncio.gather(*steps)
    assert log == ["0", "1", "2"]
