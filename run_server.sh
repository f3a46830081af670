#!/usr/bin/env bash
# Set up (first run only) and serve powersim on http://$HOST:$PORT (default 127.0.0.1:5000).
# Without REDIS_URL, and with nothing on 127.0.0.1:6479, it starts a local Redis there for the
# lifetime of the server (files under data/). With REDIS_URL it uses that Redis and starts none.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/bootstrap.sh
bootstrap_venv requirements.txt

redis_pid=""
stop_redis() {
  if [ -n "$redis_pid" ]; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
}
trap stop_redis EXIT

if [ -z "${REDIS_URL:-}" ] && ! port_open 127.0.0.1 6479; then
  redis_server=$(find_redis_server)
  mkdir -p data && chmod 700 data
  echo "starting $redis_server on 127.0.0.1:6479 (log: data/redis.log)" >&2
  # Its own session: Ctrl-C reaches the server only; Redis is stopped after the server has drained.
  setsid "$redis_server" --bind 127.0.0.1 --port 6479 --dir "$PWD/data" --dbfilename redis.rdb \
    --notify-keyspace-events 'K$gx' --logfile "$PWD/data/redis.log" --daemonize no &
  redis_pid=$!
  for _ in $(seq 50); do port_open 127.0.0.1 6479 && break; sleep 0.1; done
  port_open 127.0.0.1 6479 || { echo "redis-server did not start; see data/redis.log" >&2; exit 1; }
fi

# Forward Ctrl-C / SIGTERM to the server, wait for its clean shutdown, then stop our Redis.
.venv/bin/python -m powersim &
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
