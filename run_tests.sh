#!/usr/bin/env bash
# Install what the tests need (a virtual environment with requirements-dev.txt, which brings a
# redis-server binary), lint, type-check and run the whole suite. Extra arguments go to pytest,
# e.g. ./run_tests.sh -k websocket -x
#   VENV    the environment to use or create (default .venv)
#   PYTHON  the interpreter to create it with (default: the newest working python3.1x on PATH)
# .ci/run uses both to run the suite on Python 3.11 and 3.13.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
bootstrap_venv requirements-dev.txt
echo "testing with $("$VENV/bin/python" --version) in $VENV" >&2
"$VENV/bin/ruff" check .
"$VENV/bin/ruff" format --check .
"$VENV/bin/mypy"  # strict, on powersim/: see [tool.mypy] in pyproject.toml
exec "$VENV/bin/python" -m pytest "$@"
