"""In-process broadcaster: one bounded queue per subscriber, a publish that never waits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .constants import SUBSCRIBER_QUEUE
from .models import EMPTY_RESULT_JSON, SimulationResult


@dataclass(frozen=True, slots=True)
class Update:
    """A result and its JSON, serialized once for every websocket client."""

    result: SimulationResult | None
    text: str


NO_RESULT = Update(None, EMPTY_RESULT_JSON)


class Subscriber:
    """One client's pending updates."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Update] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, update: Update) -> None:
        # A slow client skips to the newest result: stale values are worthless here.
        while self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(update)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def __aiter__(self) -> AsyncIterator[Update]:
        """Updates in order, never the same one twice in a row."""
        last: str | None = None
        while True:
            update = await self._queue.get()
            if update.text != last:
                last = update.text
                yield update


class Hub:
    """Fans each new result out to every subscriber; knows the current one for newcomers."""

    def __init__(self, queue_size: int = SUBSCRIBER_QUEUE) -> None:
        self._queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self.current = NO_RESULT

    def __len__(self) -> int:
        return len(self._subscribers)

    def publish(self, result: SimulationResult) -> None:
        self.current = update = Update(result, result.to_json())
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
