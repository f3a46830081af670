"""In-process broadcaster: one bounded queue per subscriber, a publish that never waits."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .constants import SUBSCRIBER_QUEUE
from .models import EMPTY_RESULT_JSON, SimulationResult


@dataclass(frozen=True, slots=True)
class Update:
    """A result and its JSON, serialized (and UTF-8 encoded) once for every websocket client."""

    result: SimulationResult | None
    text: str
    data: bytes


def make_update(result: SimulationResult | None) -> Update:
    text = result.to_json() if result is not None else EMPTY_RESULT_JSON
    return Update(result, text, text.encode())


NO_RESULT = make_update(None)


class Subscriber:
    """One client's pending updates: at most `maxsize`, oldest dropped first, delivered in order.

    A deque and one wake-up future instead of an asyncio.Queue: publishing to thousands of
    subscribers is this class's hot path, and the queue's machinery cost more than the send.
    """

    def __init__(self, maxsize: int) -> None:
        self._pending: deque[Update] = deque(maxlen=maxsize)
        self._waiter: asyncio.Future[None] | None = None
        self._last: str | None = None
        self.dropped = 0

    def offer(self, update: Update) -> None:
        # A slow client skips to the newest result: stale values are worthless here.
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1  # the deque drops the oldest itself
        self._pending.append(update)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def next(self) -> Update:
        """The next update in order, never the same result twice in a row."""
        while True:
            while not self._pending:
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
            update = self._pending.popleft()
            if update.text != self._last:
                self._last = update.text
                return update


class Hub:
    """Fans each new result out to every subscriber; knows the current one for newcomers."""

    def __init__(self, queue_size: int = SUBSCRIBER_QUEUE) -> None:
        self._queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self.current = NO_RESULT

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, result: SimulationResult) -> None:
        self.current = update = make_update(result)
        for subscriber in self._subscribers:
            subscriber.offer(update)

    @contextmanager
    def subscribe(self) -> Iterator[Subscriber]:
        """Register a subscriber whose first update is the current result."""
        subscriber = Subscriber(self._queue_size)
        subscriber.offer(self.current)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)
