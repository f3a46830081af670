#!/usr/bin/env bash
# Serve powersim in the foreground, with a Redis beside it when none is given.
# Used by run_server.sh (after it has set up .venv) and as the container's command.
#   PYTHON    the interpreter that has powersim's requirements (default: python)
#   DATA_DIR  where a Redis started here keeps its files (default: data)
# Without REDIS_URL, and with nothing listening on 127.0.0.1:6479, it starts redis-server there
# (keyspace notifications on) and stops it after the server has shut down. With REDIS_URL set,
# it never starts a Redis. SIGINT/SIGTERM are forwarded to the server, which drains and exits.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
PYTHON=${PYTHON:-python}
DATA_DIR=${DATA_DIR:-data}

redis_pid=""
stop_redis() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
}
trap stop_redis EXIT

if [ -z "${REDIS_URL:-}" ] && ! port_open 127.0.0.1 6479; then
  redis_server=$(find_redis_server "$PYTHON")
  mkdir -p "$DATA_DIR" && chmod 700 "$DATA_DIR"
  data_dir=$(cd "$DATA_DIR" && pwd)
  echo "starting $redis_server on 127.0.0.1:6479 (log: $data_dir/redis.log)" >&2
  # Its own session: Ctrl-C reaches the server only; Redis is stopped after the server has drained.
  setsid "$redis_server" --bind 127.0.0.1 --port 6479 --dir "$data_dir" --dbfilename redis.rdb \
    --notify-keyspace-events 'K$gx' --logfile "$data_dir/redis.log" --daemonize no &
  redis_pid=$!
  for _ in $(seq 50); do port_open 127.0.0.1 6479 && break; sleep 0.1; done
  port_open 127.0.0.1 6479 || { echo "redis-server did not start; see $data_dir/redis.log" >&2; exit 1; }
fi

"$PYTHON" -m powersim &
server_pid=$!
forwarded=0
trap 'forwarded=1; kill -TERM "$server_pid" 2>/dev/null || true' INT TERM
status=0
wait "$server_pid" || status=$?
if [ "$forwarded" = 1 ]; then  # that wait was cut short by the signal: collect the real status
  status=0
  wait "$server_pid" || status=$?
fi
exit "$status"
