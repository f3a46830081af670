"""`python -m bench` (through bench/run.sh): run every benchmark, rewrite BENCHMARKS.md."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from . import fanout, http_bench, profile_sim, sim_bench, startup
from .figures import Figure
from .harness import ROOT, redis

WORKERS = os.cpu_count() or 1


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


BENCHMARKS = ("sim", "get", "latency", "post", "fanout", "startup")


def main(selected: tuple[str, ...]) -> None:
    """All benchmarks rewrite BENCHMARKS.md; a selection (`bench/run.sh get post`) only prints."""
    started = time.monotonic()
    figures: list[Figure] = []
    extras: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, redis() as server:
        db_dir = Path(tmp)
        if "sim" in selected:
            print("simulation cost ...", flush=True)
            figures.append(sim_bench.simulation_cost()[0])
        if "get" in selected:
            print("GET throughput ...", flush=True)
            figures += http_bench.get_throughput(server.url, db_dir)
        if "latency" in selected:
            print("GET latency under POST load ...", flush=True)
            figures.append(http_bench.get_latency_under_load(server.url, db_dir))
        if "post" in selected:
            print("POST throughput ...", flush=True)
            figures.append(http_bench.post_throughput(server.url, db_dir, WORKERS))
        if "fanout" in selected:
            for subscribers, limit in ((1000, 100.0), (5000, 500.0)):
                print(f"fan-out to {subscribers} ...", flush=True)
                figure, kib = fanout.fanout(server, db_dir, subscribers, limit)
                figures.append(figure)
                extras[f"memory per idle subscriber ({subscribers} connected)"] = f"{kib:.1f} KiB (target <= 50 KiB)"
        if "startup" in selected:
            print("start-up ...", flush=True)
            figures.append(startup.startup(server.url, db_dir, WORKERS))
    if selected != BENCHMARKS:
        for figure in figures:
            print(figure)
        print(extras)
        return
    write_report(figures, extras, profile_sim.profile_run_simulation(), time.monotonic() - started)


def write_report(figures: list[Figure], extras: dict[str, str], profile: str, seconds: float) -> None:
    rows = [
        "| figure | measured | baseline (same run) | ratio | target | result | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in figures:
        rows.append(
            f"| {f.name} | {f.measured:,.2f} {f.unit} | {f.baseline:,.2f} {f.unit} ({f.baseline_label}) | "
            f"{f.ratio:.2f} | {f.target} | {'pass' if f.passed else 'MISS'} | {f.note} |"
        )
    extra_lines = [f"- {name}: {value}" for name, value in extras.items()]
    generated = (ROOT / "bench" / "BENCHMARKS.head.md").read_text()
    body = f"""{generated}
## Latest run

Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Machine: {os.cpu_count()} CPUs, {cpu_model()}, Python
{platform.python_version()}. Whole run: {seconds:.0f} s. Reproduce with `bench/run.sh`.

{chr(10).join(rows)}

{chr(10).join(extra_lines)}

## Profile of the slowest path: one `run_simulation()` call

`pyinstrument`, 20 calls, top of the tree:

```
{profile}
```
"""
    (ROOT / "BENCHMARKS.md").write_text(body)
    print(body)


if __name__ == "__main__":
    chosen = tuple(sys.argv[1:]) or BENCHMARKS
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        sys.exit(f"unknown benchmarks {sorted(unknown)}; choose from {', '.join(BENCHMARKS)}")
    main(tuple(b for b in BENCHMARKS if b in chosen))
