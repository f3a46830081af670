#!/usr/bin/env bash
# Run every benchmark against servers started here on free loopback ports, with their own
# Redis, and rewrite BENCHMARKS.md. Needs wrk (installed from Debian when missing, as root).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
bootstrap_venv requirements-dev.txt
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt
if ! command -v wrk >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
ulimit -n "$(ulimit -Hn)"  # 5,000 websocket clients need the file descriptors
exec .venv/bin/python -m bench "$@"
