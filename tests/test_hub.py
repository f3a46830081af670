"""The hub's promises, one by one: the current result first, order, no repeats, the oldest
dropped first when a subscriber falls behind, a publish that never waits, clean unsubscribe."""

from __future__ import annotations

import asyncio

import pytest

from powersim.hub import NO_RESULT, Hub, Subscriber
from powersim.models import SimulationResult


def result(n: int) -> SimulationResult:
    return SimulationResult(n, float(n), float(n) / 2, None)


async def drain(subscriber: Subscriber, count: int) -> list[int | None]:
    """The ids of the next `count` updates (None for the empty snapshot)."""
    updates = [await asyncio.wait_for(subscriber.next(), 1) for _ in range(count)]
    return [u.result.id if u.result is not None else None for u in updates]


async def nothing_more(subscriber: Subscriber) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(subscriber.next(), 0.05)


async def test_a_new_subscriber_gets_the_empty_snapshot_then_results_in_order() -> None:
    hub = Hub(queue_size=8)
    with hub.subscribe() as subscriber:
        for n in (1, 2, 3):
            hub.publish(result(n))
        assert await drain(subscriber, 4) == [None, 1, 2, 3]
        await nothing_more(subscriber)
    with Hub().subscribe() as first:
        assert await asyncio.wait_for(first.next(), 1) is NO_RESULT


async def test_a_late_subscriber_starts_from_the_current_result() -> None:
    hub = Hub(queue_size=8)
    hub.publish(result(1))
    hub.publish(result(2))
    with hub.subscribe() as subscriber:
        assert await drain(subscriber, 1) == [2]
        await nothing_more(subscriber)


async def test_the_same_result_is_never_delivered_twice_in_a_row() -> None:
    hub = Hub(queue_size=8)
    with hub.subscribe() as subscriber:
        await drain(subscriber, 1)
        for n in (1, 1, 2, 2, 2, 1):
            hub.publish(result(n))
        assert await drain(subscriber, 3) == [1, 2, 1]  # equal neighbours collapse, a return is news
        await nothing_more(subscriber)
        hub.publish(result(1))  # equal to the last one delivered, even across a wait
        await nothing_more(subscriber)


async def test_a_full_queue_drops_the_oldest_and_keeps_the_newest() -> None:
    hub = Hub(queue_size=3)
    with hub.subscribe() as slow:
        for n in range(1, 11):
            hub.publish(result(n))
        assert slow.pending == 3
        assert slow.dropped == 8  # the snapshot and runs 1..7
        assert await drain(slow, 3) == [8, 9, 10]
        await nothing_more(slow)


async def test_publish_never_waits_and_one_slow_subscriber_does_not_hold_others() -> None:
    hub = Hub(queue_size=2)
    with hub.subscribe() as slow, hub.subscribe() as fast:
        assert await drain(fast, 1) == [None]
        for n in range(1, 1001):
            hub.publish(result(n))  # synchronous: would raise or block if it waited
            assert await drain(fast, 1) == [n]
        assert slow.pending == 2
        assert await drain(slow, 2) == [999, 1000]


async def test_unsubscribe_happens_on_error_too() -> None:
    hub = Hub()

    def serve_and_fail() -> None:
        with hub.subscribe():
            assert len(hub) == 1
            raise RuntimeError("the client went away")

    with pytest.raises(RuntimeError):
        serve_and_fail()
    assert len(hub) == 0
    hub.publish(result(1))  # nobody left to offer it to
