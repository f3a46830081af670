"""Settings read once from the environment; the only module that looks at os.environ."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from redis.asyncio.connection import parse_url

from .constants import DEFAULT_MAX_BUSES, DEFAULT_MAX_NETWORK_BYTES, DEFAULT_RUN_TIMEOUT_S
from .errors import SettingsError
from .grid import DEFAULT_VM_BAND, check_band

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
CGROUP_ROOT = Path("/sys/fs/cgroup")
# Query parameters that carry a secret (redis-py passes unknown ones on as keyword arguments).
_SECRET_WORDS = ("pass", "secret", "token", "auth")
# A host name as POWERSIM_ALLOWED_HOSTS takes it: labels of letters, digits, - and _; a leading
# dot makes it a suffix (".example.com": example.com and every name under it).
_HOST_NAME = re.compile(r"\.?[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 5000
    redis_url: str = field(default="redis://127.0.0.1:6479/0", repr=False)  # may carry a password
    database_path: Path = Path("data/powersim.db")
    simulation: str = "test_sim:run_network"  # returns the solved network: runs have details
    voltage_band: tuple[float, float] = DEFAULT_VM_BAND  # pu, for buses without min/max_vm_pu
    workers: int = 1
    log_level: str = "INFO"
    max_pending: int = 32  # runs queued or running at once; beyond: 503 with Retry-After
    max_subscribers: int = 10_000  # concurrent websockets (REST and GraphQL together)
    api_token: str | None = field(default=None, repr=False)  # required for runs, when set
    read_token: str | None = field(default=None, repr=False)  # required for reads, when set
    allowed_origins: tuple[str, ...] = ()  # cross-origin browser pages allowed; empty: same origin only
    allowed_hosts: tuple[str, ...] = ()  # Host names served beside localhost, IP literals and `host`
    drain_timeout: float = 30.0  # on SIGTERM, how long runs in flight may take to finish
    event_loop: str = "uvloop"  # or "asyncio", the standard loop (for debugging)
    ws_heartbeat: float = 20.0  # websocket ping interval; a peer silent for half of it more is dropped
    run_timeout: float = DEFAULT_RUN_TIMEOUT_S  # a run past it is stopped (its worker replaced)
    worker_memory_mb: int | None = None  # address-space cap per worker; None: no cap
    max_network_bytes: int = DEFAULT_MAX_NETWORK_BYTES  # largest upload
    max_buses: int = DEFAULT_MAX_BUSES  # largest upload (checked at upload and again at run time)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from the environment; raise SettingsError naming the first bad one."""
        env = os.environ if env is None else env
        workers = _int(env, "POWERSIM_WORKERS", usable_cpus(), low=1, high=256)
        return cls(
            host=env.get("HOST", cls.host) or cls.host,
            port=_int(env, "PORT", cls.port, low=1, high=65535),
            redis_url=_redis_url(env.get("REDIS_URL") or cls.redis_url),  # empty: unset, as in serve.sh
            database_path=parse_database_url(env.get("DATABASE_URL", "sqlite:///data/powersim.db")),
            simulation=_simulation(env.get("POWERSIM_SIMULATION", cls.simulation)),
            voltage_band=_voltage_band(env.get("POWERSIM_VOLTAGE_BAND", "")),
            workers=workers,
            log_level=_log_level(env.get("LOG_LEVEL", cls.log_level)),
            max_pending=_int(env, "POWERSIM_MAX_PENDING", 32 * workers, low=1, high=1_000_000),
            max_subscribers=_int(env, "POWERSIM_MAX_SUBSCRIBERS", cls.max_subscribers, low=1, high=1_000_000),
            api_token=_token(env, "POWERSIM_API_TOKEN"),
            read_token=_token(env, "POWERSIM_READ_TOKEN"),
            allowed_origins=_origins(env.get("POWERSIM_ALLOWED_ORIGINS", "")),
            allowed_hosts=_hosts(env.get("POWERSIM_ALLOWED_HOSTS", "")),
            drain_timeout=float(_int(env, "POWERSIM_DRAIN_TIMEOUT", int(cls.drain_timeout), low=0, high=3600)),
            event_loop=_choice(env, "POWERSIM_EVENT_LOOP", cls.event_loop, ("uvloop", "asyncio")),
            ws_heartbeat=float(_int(env, "POWERSIM_WS_HEARTBEAT", int(cls.ws_heartbeat), low=1, high=3600)),
            run_timeout=_seconds(env, "POWERSIM_RUN_TIMEOUT", cls.run_timeout, low=0.1, high=86_400),
            worker_memory_mb=_memory_mb(env, workers),
            max_network_bytes=_int(env, "POWERSIM_MAX_NETWORK_BYTES", cls.max_network_bytes, low=1024, high=2**31),
            max_buses=_int(env, "POWERSIM_MAX_BUSES", cls.max_buses, low=1, high=1_000_000),
        )

    @property
    def redis_db(self) -> int:
        """The database redis-py selects for this URL: the watcher must listen to its channel."""
        return redis_db_of(self.redis_url)

    @property
    def redis_url_redacted(self) -> str:
        return redact_url(self.redis_url)


def redis_db_of(url: str) -> int:
    """The db number as redis-py's own URL parsing reads it (`?db=` wins over the path)."""
    try:
        db = parse_url(url).get("db", 0)
    except ValueError as exc:  # redis-py's messages name the query parameter, never its value
        raise SettingsError(f"REDIS_URL is not a valid Redis URL: {exc}") from None
    if db < 0:
        raise SettingsError(f"REDIS_URL database must not be negative, got {db}")
    return db


def redact_url(url: str) -> str:
    """The URL without its credentials (userinfo, `?password=`-like parameters), so it can be logged."""
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at:  # `user:pw@`, `:pw@`, or a bare `pw@` (people write the password there)
        user, colon, _ = userinfo.partition(":")
        userinfo = f"{user}:***" if colon else "***"
    if "@" in parts.query or "@" in parts.fragment:  # a raw ? or # inside a password split the URL there
        userinfo, at, hostport = "", "", "***"
        query, fragment = ("***" if parts.query else ""), ""
    else:
        query = "&".join(_redact_param(param) for param in parts.query.split("&")) if parts.query else ""
        fragment = "***" if parts.fragment else ""
    # Not urlunsplit: it drops the empty authority of unix:///path.
    text = f"{parts.scheme}://{userinfo}{at}{hostport}" if "://" in url else f"{parts.scheme}:"
    return text + parts.path + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")


def _redact_param(param: str) -> str:
    name, eq, _ = param.partition("=")
    secret = eq and any(word in unquote(name).lower() for word in _SECRET_WORDS)
    return f"{name}=***" if secret else param


def parse_database_url(url: str) -> Path:
    """`sqlite:///rel/path.db` is relative to the working directory, `sqlite:////abs.db` absolute."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        # Never the URL itself: a server URL carries its password (mysql://admin:secret@host/db).
        scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]{0,19})://", url)
        got = f"a {scheme[1]}:// URL" if scheme else "something else"
        raise SettingsError(f"DATABASE_URL must look like sqlite:///data/powersim.db, got {got}")
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


def _seconds(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw[:40]!r}") from None
    if not low <= value <= high:  # NaN fails this too
        raise SettingsError(f"{name} must be between {low:g} and {high:g} seconds, got {raw[:40]!r}")
    return value


# A worker holds ~1.5 GB of address space once pandapower is loaded (mostly reserved, untouched):
# the default cap never goes below this, whatever the share of memory says.
MIN_DEFAULT_WORKER_MEMORY_MB = 3072


def _memory_mb(env: Mapping[str, str], workers: int) -> int | None:
    """POWERSIM_WORKER_MEMORY_MB; `0` turns the cap off; by default a fair share: 80 % of the
    machine's memory divided among the workers, at least MIN_DEFAULT_WORKER_MEMORY_MB."""
    if env.get("POWERSIM_WORKER_MEMORY_MB", "").strip():
        value = _int(env, "POWERSIM_WORKER_MEMORY_MB", 0, low=0, high=2**24)
        return value or None
    return max(usable_memory_mb() * 4 // 5 // workers, MIN_DEFAULT_WORKER_MEMORY_MB)


def usable_memory_mb() -> int:
    """The machine's memory, capped by a container's memory limit (as usable_cpus does for CPUs)."""
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError):  # not on this platform
        physical = MIN_DEFAULT_WORKER_MEMORY_MB
    limit = cgroup_memory_limit_mb(CGROUP_ROOT, _read(Path("/proc/self/cgroup")))
    return physical if limit is None else min(physical, limit)


def cgroup_memory_limit_mb(root: Path, proc_self_cgroup: str) -> int | None:
    """The tightest memory limit on this process's cgroup or any ancestor: v2 `memory.max`
    ("max": none), v1 `memory.limit_in_bytes` (a huge number: none)."""
    found: list[int] = []
    for line in proc_self_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            files = [d / "memory.max" for d in _ancestors(root, path)]
        elif "memory" in controllers.split(","):
            files = [d / "memory.limit_in_bytes" for d in _ancestors(root / "memory", path)]
        else:
            continue
        for file in files:
            text = _read(file).strip()
            if text.isdigit() and int(text) < 2**60:
                found.append(int(text) // 2**20)
    return min(found, default=None)


def _redis_url(url: str) -> str:
    """Checked here so that a bad URL stops start-up with a clear message, never a traceback."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise SettingsError("REDIS_URL must start with redis://, rediss:// or unix://")
    if parts.scheme == "unix" and not parts.path.startswith("/"):
        raise SettingsError("REDIS_URL unix:// needs an absolute socket path: unix:///run/redis/redis.sock")
    try:
        parts.port  # noqa: B018 -- urllib checks the port only when it is read
    except ValueError:
        raise SettingsError("REDIS_URL has a bad port number") from None
    path = parts.path.strip("/")
    # redis-py silently ignores a path it cannot read as a number (and selects db 0).
    if parts.scheme != "unix" and path and not (path.isascii() and path.isdigit()):
        raise SettingsError("REDIS_URL database must be a number, like redis://host:6479/0")
    redis_db_of(url)
    return url


def _simulation(spec: str) -> str:
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise SettingsError(f"POWERSIM_SIMULATION must look like module:function, got {spec!r}")
    return spec


def _voltage_band(raw: str) -> tuple[float, float]:
    """`low,high` in per unit, for example 0.9,1.1; empty: the default 0.95,1.05."""
    if not raw.strip():
        return DEFAULT_VM_BAND
    try:
        low, high = (float(part) for part in raw.split(","))
        return check_band((low, high))
    except ValueError:
        raise SettingsError(
            f"POWERSIM_VOLTAGE_BAND must be two numbers low,high with 0 < low < high, like 0.95,1.05; got {raw[:40]!r}"
        ) from None


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
    """`https://a.example, http://localhost:3000` -> normalized origins; `*` means any."""
    origins = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        parts = urlsplit(item)
        if item != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/")):
            raise SettingsError(f"POWERSIM_ALLOWED_ORIGINS entries must look like https://host[:port], got {item!r}")
        origins.append(item if item == "*" else normalize_origin(f"{parts.scheme}://{parts.netloc}"))
    return tuple(origins)


DEFAULT_PORTS = {"http": ":80", "https": ":443"}


def normalize_origin(origin: str) -> str:
    """Lowercased, without a trailing slash or the scheme's default port: browsers send
    `https://a.example`, never `https://a.example:443`, and the two are one origin."""
    origin = origin.strip().lower().rstrip("/")
    scheme, _, netloc = origin.partition("://")
    port = DEFAULT_PORTS.get(scheme)
    return origin[: -len(port)] if port and netloc.endswith(port) else origin


def _hosts(raw: str) -> tuple[str, ...]:
    """`grid.example.com, .corp.example` -> lowercased names and suffixes; `*` means any."""
    hosts = []
    for item in filter(None, (part.strip().lower().rstrip(".") for part in raw.split(","))):
        if item != "*" and not _HOST_NAME.fullmatch(item):
            raise SettingsError(
                f"POWERSIM_ALLOWED_HOSTS entries must be host names (grid.example.com), suffixes (.example.com)"
                f" or *, without scheme or port, got {item!r}"
            )
        hosts.append(item)
    return tuple(hosts)


def _log_level(level: str) -> str:
    if level.upper() not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level.upper()


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (containers).
    os.cpu_count() sees every CPU of the host: 64 workers inside a 2-CPU container."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cap_cpus(affinity, cgroup_cpu_quota(CGROUP_ROOT, _read(Path("/proc/self/cgroup"))))


def cap_cpus(affinity: int, quota: int | None) -> int:
    return max(1, affinity if quota is None else min(affinity, quota))


def parse_cpu_max(text: str) -> int | None:
    """cgroup v2 `cpu.max`: "max 100000" is no limit, "150000 100000" is 1.5 CPUs, rounded up to 2."""
    quota, _, period = text.strip().partition(" ")
    return None if quota == "max" else _ceil_ratio(quota, period or "100000")


def parse_cfs_quota(quota: str, period: str) -> int | None:
    """cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`; a quota of -1 is no limit."""
    return _ceil_ratio(quota.strip(), period.strip())


def _ceil_ratio(quota: str, period: str) -> int | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    return -(-q // p) if q > 0 and p > 0 else None


def cgroup_cpu_quota(root: Path, proc_self_cgroup: str) -> int | None:
    """The tightest CPU quota on this process's cgroup or any ancestor, v2 or v1 layout.
    `proc_self_cgroup` is the text of /proc/self/cgroup; `root` is where cgroupfs is mounted."""
    found: list[int | None] = []
    for line in proc_self_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":  # v2: one tree, quota in cpu.max
            found += (parse_cpu_max(_read(d / "cpu.max")) for d in _ancestors(root, path))
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's own tree ("cpu" or "cpu,cpuacct")
            for base in {root / "cpu", root / controllers}:
                found += (
                    parse_cfs_quota(_read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us"))
                    for d in _ancestors(base, path)
                )
    return min((quota for quota in found if quota is not None), default=None)


def _ancestors(base: Path, cgroup_path: str) -> Iterator[Path]:
    """base/a/b, base/a, base: limits apply from every level (inside a container's cgroup
    namespace the listed path may not exist, and the container's own cgroup is `base`)."""
    parts = [part for part in PurePosixPath(cgroup_path).parts if part not in ("/", "..", ".")]
    for depth in range(len(parts), -1, -1):
        yield base.joinpath(*parts[:depth])


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""
