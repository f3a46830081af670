"""Settings come from the environment; a bad value is named in one clear error."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from powersim.errors import SettingsError
from powersim.settings import (
    MIN_DEFAULT_WORKER_MEMORY_MB,
    Settings,
    cap_cpus,
    cgroup_cpu_quota,
    cgroup_memory_limit_mb,
    parse_cpu_max,
    redact_url,
    usable_cpus,
    usable_memory_mb,
)

ROOT = Path(__file__).resolve().parent.parent


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.redis_url) == ("127.0.0.1", 5000, "redis://127.0.0.1:6479/0")
    assert s.database_path == Path("data/powersim.db")
    assert s.simulation == "test_sim:run_network"  # returns the solved network: runs have details
    assert s.voltage_band == (0.95, 1.05)
    assert s.workers == usable_cpus() <= (os.cpu_count() or 1)
    assert (s.allowed_origins, s.allowed_hosts) == ((), ())
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
            "POWERSIM_VOLTAGE_BAND": "0.9, 1.1",
        }
    )
    assert (s.host, s.port, s.redis_db, s.workers, s.log_level) == ("0.0.0.0", 8080, 3, 3, "DEBUG")
    assert s.voltage_band == (0.9, 1.1)
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
        ("POWERSIM_VOLTAGE_BAND", "0.95", "POWERSIM_VOLTAGE_BAND must be two numbers low,high"),
        ("POWERSIM_VOLTAGE_BAND", "1.05,0.95", "POWERSIM_VOLTAGE_BAND must be two numbers low,high"),
        ("POWERSIM_VOLTAGE_BAND", "0,1.05", "POWERSIM_VOLTAGE_BAND must be two numbers low,high"),
        ("POWERSIM_VOLTAGE_BAND", "0.95,nan", "POWERSIM_VOLTAGE_BAND must be two numbers low,high"),
        ("POWERSIM_VOLTAGE_BAND", "0.9,1.0,1.1", "POWERSIM_VOLTAGE_BAND must be two numbers low,high"),
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


# --- Redis URLs: the db the watcher listens to is the one redis-py selects --------------------


@pytest.mark.parametrize(
    ("url", "db"),
    [
        ("unix:///run/redis/redis.sock", 0),
        ("unix:///run/redis/redis.sock?db=3", 3),
        ("unix://:pw@/run/redis/redis.sock?db=4&password=x", 4),
        ("redis://127.0.0.1:6479?db=3", 3),
        ("redis://127.0.0.1:6479/5", 5),
        ("redis://127.0.0.1:6479/2?db=3", 3),  # redis-py: the query wins over the path
        ("rediss://:pw@redis.example:6380/7", 7),
    ],
)
def test_redis_db_is_the_one_redis_py_selects(url: str, db: int) -> None:
    settings = Settings.from_env({"REDIS_URL": url})
    selected = aioredis.ConnectionPool.from_url(url).connection_kwargs.get("db", 0)
    assert settings.redis_db == selected == db
    assert settings.redis_url == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://h:6479?db=three", "REDIS_URL is not a valid Redis URL: Invalid value for 'db'"),
        ("unix:///run/redis.sock?db=x", "REDIS_URL is not a valid Redis URL: Invalid value for 'db'"),
        ("redis://h:6479?db=-1", "REDIS_URL database must not be negative"),
        ("redis://h:6479/\u00b2", "REDIS_URL database must be a number"),  # isdigit() but not int()
        ("redis://h:6479/3/x", "REDIS_URL database must be a number"),  # redis-py would select 0
        ("unix://redis.sock", "REDIS_URL unix:// needs an absolute socket path"),
        ("redis://:hunter2@h:port/0", "REDIS_URL has a bad port number"),
        ("redis://h:6479?socket_timeout=soon", "Invalid value for 'socket_timeout'"),
    ],
)
def test_bad_redis_urls_are_named(url: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as info:
        Settings.from_env({"REDIS_URL": url})
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://user:hunter2@h:1/0", "redis://user:***@h:1/0"),
        ("redis://:hunter2@h:1/0", "redis://:***@h:1/0"),
        ("redis://hunter2@h:1/0", "redis://***@h:1/0"),
        ("redis://h:1/0?password=hunter2", "redis://h:1/0?password=***"),
        ("redis://h:1/0?db=3&password=hunter2&username=u", "redis://h:1/0?db=3&password=***&username=u"),
        ("rediss://h:1/0?ssl_password=hunter2", "rediss://h:1/0?ssl_password=***"),
        ("unix:///run/r.sock?db=3&password=hunter2", "unix:///run/r.sock?db=3&password=***"),
        ("unix://:hunter2@/run/r.sock?db=3", "unix://:***@/run/r.sock?db=3"),
        ("redis://:hun%40ter2@h:1/0", "redis://:***@h:1/0"),
        ("redis://:hunter2#x@h:1/0", "redis://***"),  # an unencoded # split the password off
        ("redis://h:1/0", "redis://h:1/0"),
        ("unix:///run/r.sock", "unix:///run/r.sock"),
    ],
)
def test_every_credential_form_is_redacted(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted
    settings = Settings(redis_url=url)
    assert settings.redis_url_redacted == redacted
    assert "hunter2" not in repr(settings)
    assert "ter2" not in settings.redis_url_redacted


def test_database_url_error_names_the_setting_never_the_credentials() -> None:
    for url, shown in [
        ("mysql://admin:secret@db.example/powersim", "a mysql:// URL"),
        ("admin:secret@db", "something else"),
    ]:
        with pytest.raises(SettingsError) as info:
            Settings.from_env({"DATABASE_URL": url})
        message = str(info.value)
        assert message.startswith("DATABASE_URL must look like sqlite:///")
        assert shown in message
        for secret in ("secret", "admin", "db.example"):
            assert secret not in message


# --- POWERSIM_ALLOWED_HOSTS ---------------------------------------------------------------------


def test_allowed_hosts_are_normalized() -> None:
    s = Settings.from_env({"POWERSIM_ALLOWED_HOSTS": " Grid.Example.COM. , .corp.example,powersim, *"})
    assert s.allowed_hosts == ("grid.example.com", ".corp.example", "powersim", "*")


@pytest.mark.parametrize("entry", ["http://grid.example", "grid.example:5000", "[::1]", "grid example", "a..b"])
def test_bad_allowed_hosts_are_named(entry: str) -> None:
    with pytest.raises(SettingsError, match="POWERSIM_ALLOWED_HOSTS entries must be host names"):
        Settings.from_env({"POWERSIM_ALLOWED_HOSTS": f"ok.example,{entry}"})


# --- POWERSIM_WORKERS: the CPUs this process may use --------------------------------------------


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("max 100000\n", None), ("200000 100000\n", 2), ("150000 100000", 2), ("50000 100000", 1), ("max", None)],
)
def test_cgroup_v2_cpu_max_is_rounded_up(text: str, cpus: int | None) -> None:
    assert parse_cpu_max(text) == cpus


def write_files(base: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_text(text)


def test_cgroup_v2_quota_is_the_tightest_of_the_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {"cgroup.controllers": "cpu", "a/cpu.max": "300000 100000\n", "a/b/cpu.max": "max 100000\n"},
    )
    assert cgroup_cpu_quota(tmp_path, "0::/a/b\n") == 3
    write_files(tmp_path, {"a/b/cpu.max": "100000 100000\n"})
    assert cgroup_cpu_quota(tmp_path, "0::/a/b\n") == 1
    assert cgroup_cpu_quota(tmp_path, "0::/\n") is None  # the root has no cpu.max
    # Inside a container's cgroup namespace the path is "/" and /sys/fs/cgroup is its own cgroup.
    write_files(tmp_path, {"cpu.max": "200000 100000\n"})
    assert cgroup_cpu_quota(tmp_path, "0::/\n") == 2


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    own = "12:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"
    write_files(tmp_path, {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n", "cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_quota(tmp_path, own) is None
    write_files(
        tmp_path,
        {"cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "250000\n", "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000"},
    )
    assert cgroup_cpu_quota(tmp_path, own) == 3
    # A container sees the host's path in /proc/self/cgroup, but its own cgroup at the mount root.
    shutil.rmtree(tmp_path / "cpu,cpuacct" / "docker")
    write_files(tmp_path, {"cpu,cpuacct/cpu.cfs_quota_us": "100000\n"})
    assert cgroup_cpu_quota(tmp_path, own) == 1
    assert cgroup_cpu_quota(tmp_path, "") is None


def test_cpu_quota_caps_the_affinity_and_never_goes_below_one() -> None:
    assert [cap_cpus(8, 2), cap_cpus(1, 3), cap_cpus(4, None), cap_cpus(0, None)] == [2, 1, 4, 1]


def test_default_workers_follow_cpu_affinity() -> None:
    """Pinned to one CPU (as `docker run --cpuset-cpus 0` or taskset does), one worker by default."""
    taskset = shutil.which("taskset")
    if taskset is None:
        pytest.skip("taskset (util-linux) is not installed")
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this machine lets us use one CPU only: pinning to one changes nothing")
    code = "from powersim.settings import Settings; print(Settings.from_env({}).workers)"
    env = {k: v for k, v in os.environ.items() if k != "POWERSIM_WORKERS"}
    done = subprocess.run(
        [taskset, "-c", "0", sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"


# --- networks: run time limit, memory cap, upload limits (issue 13) ---------------------------


def test_the_memory_limit_of_a_cgroup_or_its_ancestors(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "a" / "memory.max").write_text(f"{3 * 2**30}\n")
    (tmp_path / "a" / "b" / "memory.max").write_text("max\n")
    assert cgroup_memory_limit_mb(tmp_path, "0::/a/b\n") == 3072
    v1 = tmp_path / "memory" / "x"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "no limit"
    assert cgroup_memory_limit_mb(tmp_path, "4:memory:/x\n") is None
    (v1 / "memory.limit_in_bytes").write_text(f"{2**30}\n")
    assert cgroup_memory_limit_mb(tmp_path, "4:memory:/x\n5:cpu,cpuacct:/x\n") == 1024
    assert cgroup_memory_limit_mb(tmp_path, "") is None


def test_worker_memory_defaults_to_a_fair_share_and_0_turns_it_off() -> None:
    share = max(usable_memory_mb() * 4 // 5 // 2, MIN_DEFAULT_WORKER_MEMORY_MB)
    assert Settings.from_env({"POWERSIM_WORKERS": "2"}).worker_memory_mb == share
    assert Settings.from_env({"POWERSIM_WORKER_MEMORY_MB": "0"}).worker_memory_mb is None
    assert Settings.from_env({"POWERSIM_WORKER_MEMORY_MB": "4096"}).worker_memory_mb == 4096
    with pytest.raises(SettingsError, match="POWERSIM_WORKER_MEMORY_MB"):
        Settings.from_env({"POWERSIM_WORKER_MEMORY_MB": "-1"})


@pytest.mark.parametrize(
    ("raw", "expected"), [("", 60.0), ("0.5", 0.5), ("120", 120.0), ("x", None), ("0", None), ("nan", None)]
)
def test_run_timeout_is_seconds_with_fractions(raw: str, expected: float | None) -> None:
    if expected is None:
        with pytest.raises(SettingsError, match="POWERSIM_RUN_TIMEOUT"):
            Settings.from_env({"POWERSIM_RUN_TIMEOUT": raw})
    else:
        assert Settings.from_env({"POWERSIM_RUN_TIMEOUT": raw}).run_timeout == expected


def test_upload_limits() -> None:
    settings = Settings.from_env({"POWERSIM_MAX_NETWORK_BYTES": "65536", "POWERSIM_MAX_BUSES": "10"})
    assert (settings.max_network_bytes, settings.max_buses) == (65536, 10)
    defaults = Settings.from_env({})
    assert (defaults.max_network_bytes, defaults.max_buses) == (20 * 2**20, 20_000)
    with pytest.raises(SettingsError, match="POWERSIM_MAX_BUSES"):
        Settings.from_env({"POWERSIM_MAX_BUSES": "0"})
