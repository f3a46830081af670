"""Runs that outlive their request: a failure nobody waits for any more is still reported."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import aiohttp
import pytest

from powersim.app import create_app
from powersim.keys import POWERSIM
from powersim.settings import Settings


async def test_a_failed_run_whose_client_left_is_logged(
    aiohttp_client: Any, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR)
    app = create_app(dataclasses.replace(settings, simulation="tests.sims:fails_slowly"))
    # handler_cancellation: the handler is cancelled when its client goes away, as behind a proxy
    client = await aiohttp_client(app, server_kwargs={"handler_cancellation": True})
    with pytest.raises(asyncio.TimeoutError):
        await client.post("/run-simulation", timeout=aiohttp.ClientTimeout(total=0.3))
    runs = set(app[POWERSIM]._runs)  # the run goes on without its client
    assert len(runs) == 1
    _, pending = await asyncio.wait(runs, timeout=10)
    assert not pending
    await asyncio.sleep(0)  # the done-callback that logs runs right after completion
    failed = [r for r in caplog.records if "client had gone away failed" in r.getMessage()]
    assert len(failed) == 1
    assert "did not converge" in failed[0].getMessage()
