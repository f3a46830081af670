#!/usr/bin/env bash
# Set up (first run only) and serve powersim on http://$HOST:$PORT (default 127.0.0.1:5000).
# Without REDIS_URL, and with nothing on 127.0.0.1:6479, it starts a local Redis there for the
# lifetime of the server (files under data/). With REDIS_URL it uses that Redis and starts none.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
bootstrap_venv requirements.txt
PYTHON="$VENV/bin/python" exec scripts/serve.sh  # VENV: .venv unless set (scripts/bootstrap.sh)
