"""Fixtures: a real redis-server for the session, a fresh SQLite file and app per test."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
import uvloop
from aiohttp.test_utils import TestClient

from powersim.app import create_app
from powersim.settings import Settings

from .redis_server import RedisServer

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]

# Live-update tests run on both loops: uvloop is production's default, and its clock ticks in
# milliseconds (the read-your-write rule once relied on finer ticks), the standard one is
# what a user gets with POWERSIM_EVENT_LOOP=asyncio.
BOTH_LOOPS: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
STANDARD_LOOP: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop}
BOTH_LOOP_MODULES = {"test_live.py", "test_watcher.py"}


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Mapping[str, LoopFactory]:
    return BOTH_LOOPS if item.path.name in BOTH_LOOP_MODULES else STANDARD_LOOP


@pytest.fixture
def quiet_pandapower() -> Iterator[None]:
    """pandapower logs that numba is missing (on purpose) on every power flow a test runs itself."""
    logger = logging.getLogger("pandapower")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if redis_server.proc is None:  # a test stopped it and failed before starting it again
        redis_server.start()
    redis_server.reset()
    return redis_server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An outside writer: a separate connection, like a user's script."""
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    return Settings(
        host="127.0.0.1",
        port=0,
        redis_url=redis_url,
        database_path=tmp_path / "data" / "powersim.db",
        simulation="tests.sims:fixed",
        workers=1,
        log_level="INFO",
    )


@pytest.fixture
def make_client(aiohttp_client: Any, settings: Settings) -> ClientFactory:
    """Start a real app on a real port; keyword arguments override settings."""

    async def make(**overrides: Any) -> TestClient[Any, Any]:
        return await aiohttp_client(create_app(dataclasses.replace(settings, **overrides)))  # type: ignore[no-any-return]

    return make


@pytest.fixture
async def client(make_client: ClientFactory) -> TestClient[Any, Any]:
    return await make_client()
