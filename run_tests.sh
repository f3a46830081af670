#!/usr/bin/env bash
# Install what the tests need (.venv, requirements-dev.txt, which brings a redis-server binary)
# and run the whole suite. Extra arguments go to pytest, e.g. ./run_tests.sh -k websocket -x
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
bootstrap_venv requirements-dev.txt
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
