"""Settings come from the environment; a bad value is named in one clear error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from powersim.errors import SettingsError
from powersim.settings import Settings, redact_url


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.redis_url) == ("127.0.0.1", 5000, "redis://127.0.0.1:6479/0")
    assert s.database_path == Path("data/powersim.db")
    assert s.simulation == "test_sim:run_simulation"
    assert s.workers == (os.cpu_count() or 1)
    assert (s.log_level, s.redis_db) == ("INFO", 0)


def test_overrides() -> None:
    s = Settings.from_env(
        {
            "HOST": "0.0.0.0",
            "PORT": "8080",
            "REDIS_URL": "redis://:pw@redis:6380/3",
            "DATABASE_URL": "sqlite:////var/lib/powersim/runs.db",
            "POWERSIM_SIMULATION": "mypkg.grid:solve",
            "POWERSIM_WORKERS": "3",
            "LOG_LEVEL": "debug",
        }
    )
    assert (s.host, s.port, s.redis_db, s.workers, s.log_level) == ("0.0.0.0", 8080, 3, 3, "DEBUG")
    assert s.database_path == Path("/var/lib/powersim/runs.db")
    assert s.simulation == "mypkg.grid:solve"
    assert s.redis_url_redacted == "redis://:***@redis:6380/3"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PORT", "http", "PORT must be an integer"),
        ("PORT", "70000", "PORT must be between 1 and 65535"),
        ("POWERSIM_WORKERS", "0", "POWERSIM_WORKERS must be between 1 and 256"),
        ("REDIS_URL", "http://localhost:6479", "REDIS_URL must start with redis://"),
        ("REDIS_URL", "redis://localhost:6479/abc", "REDIS_URL database must be a number"),
        ("DATABASE_URL", "postgres://db/powersim", "DATABASE_URL must look like sqlite:///"),
        ("DATABASE_URL", "sqlite:///", "DATABASE_URL must look like sqlite:///"),
        ("POWERSIM_SIMULATION", "test_sim.run_simulation", "POWERSIM_SIMULATION must look like module:function"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be one of"),
        ("POWERSIM_EVENT_LOOP", "trio", "POWERSIM_EVENT_LOOP must be one of uvloop, asyncio"),
        ("POWERSIM_MAX_PENDING", "0", "POWERSIM_MAX_PENDING must be between"),
        ("POWERSIM_API_TOKEN", "short", "POWERSIM_API_TOKEN must be at least 16"),
        ("POWERSIM_ALLOWED_ORIGINS", "grid.example", "POWERSIM_ALLOWED_ORIGINS entries must look like"),
    ],
)
def test_bad_values_are_named(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value})


def test_password_never_in_messages() -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({"REDIS_URL": "http://:hunter2@host:1/0"})
    assert "hunter2" not in str(info.value)
    assert redact_url("redis://user:hunter2@h:1/0") == "redis://user:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"
