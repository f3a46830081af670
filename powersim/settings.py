"""Settings read once from the environment; the only module that looks at os.environ."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import SettingsError

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5000
    redis_url: str = "redis://127.0.0.1:6479/0"
    database_path: Path = Path("data/powersim.db")
    simulation: str = "test_sim:run_simulation"
    workers: int = 1
    log_level: str = "INFO"
    max_pending: int = 32  # runs queued or running at once; beyond: 503 with Retry-After
    max_subscribers: int = 10_000  # concurrent websockets (REST and GraphQL together)
    api_token: str | None = field(default=None, repr=False)  # required for runs, when set
    read_token: str | None = field(default=None, repr=False)  # required for reads, when set
    allowed_origins: tuple[str, ...] = ()  # websocket Origins allowed; empty: any
    drain_timeout: float = 30.0  # on SIGTERM, how long runs in flight may take to finish
    event_loop: str = "uvloop"  # or "asyncio", the standard loop (for debugging)
    ws_heartbeat: float = 20.0  # websocket ping interval; a peer silent for half of it more is dropped

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment; raise SettingsError naming the first bad one."""
        env = os.environ if env is None else env
        workers = _int(env, "POWERSIM_WORKERS", os.cpu_count() or 1, low=1, high=256)
        return cls(
            host=env.get("HOST", cls.host) or cls.host,
            port=_int(env, "PORT", cls.port, low=1, high=65535),
            redis_url=_redis_url(env.get("REDIS_URL", cls.redis_url)),
            database_path=parse_database_url(env.get("DATABASE_URL", "sqlite:///data/powersim.db")),
            simulation=_simulation(env.get("POWERSIM_SIMULATION", cls.simulation)),
            workers=workers,
            log_level=_log_level(env.get("LOG_LEVEL", cls.log_level)),
            max_pending=_int(env, "POWERSIM_MAX_PENDING", 32 * workers, low=1, high=1_000_000),
            max_subscribers=_int(env, "POWERSIM_MAX_SUBSCRIBERS", cls.max_subscribers, low=1, high=1_000_000),
            api_token=_token(env, "POWERSIM_API_TOKEN"),
            read_token=_token(env, "POWERSIM_READ_TOKEN"),
            allowed_origins=_origins(env.get("POWERSIM_ALLOWED_ORIGINS", "")),
            drain_timeout=float(_int(env, "POWERSIM_DRAIN_TIMEOUT", int(cls.drain_timeout), low=0, high=3600)),
            event_loop=_choice(env, "POWERSIM_EVENT_LOOP", cls.event_loop, ("uvloop", "asyncio")),
            ws_heartbeat=float(_int(env, "POWERSIM_WS_HEARTBEAT", int(cls.ws_heartbeat), low=1, high=3600)),
        )

    @property
    def redis_db(self) -> int:
        path = urlsplit(self.redis_url).path.strip("/")
        return int(path) if path else 0

    @property
    def redis_url_redacted(self) -> str:
        return redact_url(self.redis_url)


def redact_url(url: str) -> str:
    """The URL with any password replaced, so it can be logged."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def parse_database_url(url: str) -> Path:
    """`sqlite:///rel/path.db` is relative to the working directory, `sqlite:////abs.db` absolute."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise SettingsError(f"DATABASE_URL must look like sqlite:///data/powersim.db, got {url!r}")
    return Path(url[len(prefix) :])


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _redis_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(f"REDIS_URL must start with redis://, rediss:// or unix://, got {redact_url(url)!r}")
    path = parts.path.strip("/")
    if parts.scheme != "unix" and path and not path.isdigit():
        raise SettingsError(f"REDIS_URL database must be a number, got {path!r}")
    return url


def _simulation(spec: str) -> str:
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise SettingsError(f"POWERSIM_SIMULATION must look like module:function, got {spec!r}")
    return spec


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _token(env: Mapping[str, str], name: str) -> str | None:
    token = env.get(name)
    if token is None or token == "":
        return None
    if len(token) < 16 or not token.isprintable() or " " in token:
        raise SettingsError(f"{name} must be at least 16 printable characters without spaces")
    return token


def _origins(raw: str) -> tuple[str, ...]:
    """`https://a.example, http://localhost:3000` -> normalized origins; empty means any."""
    origins = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        parts = urlsplit(item)
        if item != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/")):
            raise SettingsError(f"POWERSIM_ALLOWED_ORIGINS entries must look like https://host[:port], got {item!r}")
        origins.append(item if item == "*" else f"{parts.scheme}://{parts.netloc}".lower())
    return tuple(origins)


def _log_level(level: str) -> str:
    if level.upper() not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level.upper()
