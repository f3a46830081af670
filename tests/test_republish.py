"""Held-back results against a real Redis that refuses writes (OOM): the newest launch wins,
whatever order refusals, retries and new runs come in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis

from powersim.constants import LATEST_KEY
from powersim.latest import LatestStore, open_latest_store
from powersim.models import SimulationResult
from powersim.republish import Republisher


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[LatestStore]:
    async with open_latest_store(redis_url, redis_url) as store:
        yield store


@pytest.fixture
async def refusing(redis_client: aioredis.Redis) -> AsyncIterator[aioredis.Redis]:
    """Redis refuses every write until the test lets it (`maxmemory 0`)."""
    await redis_client.config_set("maxmemory-policy", "noeviction")
    await redis_client.config_set("maxmemory", "1")
    try:
        yield redis_client
    finally:
        await redis_client.config_set("maxmemory", "0")


def run(run_id: int, launched_at: datetime) -> SimulationResult:
    return SimulationResult(run_id, float(run_id), 0.5, launched_at)


async def written(redis_client: aioredis.Redis, within: float = 5.0) -> object:
    """The key's value once the retry loop has written it (polled: nothing else signals it)."""
    for _ in range(int(within / 0.02)):
        raw = await redis_client.get(LATEST_KEY)
        if raw is not None:
            return json.loads(raw)
        await asyncio.sleep(0.02)
    pytest.fail(f"nothing was written within {within} s")


async def test_an_older_refusal_during_a_retry_never_replaces_the_newer_one(
    store: LatestStore, refusing: aioredis.Redis
) -> None:
    now = datetime.now(UTC)
    newer, older = run(2, now), run(1, now - timedelta(seconds=1))
    republisher = Republisher(store)
    try:
        republisher.hold(newer)
        retry = asyncio.create_task(republisher.flush())
        await asyncio.sleep(0)  # the write of `newer` is in flight...
        republisher.hold(older)  # ...when an older run (finished later) is refused too
        await retry  # refused: OOM
        assert republisher.pending == newer
        await refusing.config_set("maxmemory", "0")
        assert await written(refusing) == newer.to_dict()
    finally:
        await republisher.close()


async def test_a_newer_run_written_meanwhile_makes_the_held_one_obsolete(
    store: LatestStore, refusing: aioredis.Redis
) -> None:
    now = datetime.now(UTC)
    republisher = Republisher(store)
    try:
        republisher.hold(run(1, now))
        republisher.superseded_by(run(2, now + timedelta(microseconds=1)))
        assert republisher.pending is None
        republisher.hold(run(3, now + timedelta(seconds=1)))
        republisher.superseded_by(run(4, now))  # older: the held one stays
        assert republisher.pending == run(3, now + timedelta(seconds=1))
    finally:
        await republisher.close()
