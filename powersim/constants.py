"""Names, sizes and timeouts in one place, each with the reason for its value."""

# The one Redis key holding the newest result, as JSON; outside scripts may write it too.
LATEST_KEY = "powersim:latest"

# A result is about 100 bytes of JSON; anything far larger is not one, and is not read whole.
MAX_VALUE_BYTES = 4096

# Keyspace-notification classes the watcher needs: K (keyspace channel), $ (SET and other
# string commands), g (DEL, RENAME...), x (expiry).
NOTIFY_FLAGS = "K$gx"

# How long start-up keeps trying to reach Redis before it gives up with a clear message.
REDIS_STARTUP_WAIT_S = 5.0

# Redis calls on the request path must fail fast when Redis is down: runs still succeed then.
REDIS_CALL_TIMEOUT_S = 2.0

# Simulation workers run at a lower CPU priority than the server's event loop.
WORKER_NICENESS = 5

# Warming the pool imports pandapower in every worker (about 1.3 s each, in parallel).
WORKER_WARMUP_TIMEOUT_S = 120.0

# Requests carry at most a GraphQL query (GraphiQL's introspection query is ~2 KiB).
MAX_BODY_BYTES = 16 * 1024

# History page sizes.
DEFAULT_PAGE = 50
MAX_PAGE = 500

# Per-subscriber pending messages: only the newest result matters, so a full queue is
# collapsed to the newest message rather than growing or blocking the publisher.
SUBSCRIBER_QUEUE = 8

# Bytes buffered for one client before its sender waits for the socket to drain. aiohttp's
# default (256 KiB plus a 64 KiB transport buffer) and Linux send-buffer autotuning (up to
# 4 MiB) would let every stuck client pin megabytes; with these, a stuck client's backlog
# collapses in its bounded queue instead. Results are ~100 bytes, so this is still hundreds.
WS_WRITE_BUFFER_BYTES = 16 * 1024
WS_SOCKET_SNDBUF_BYTES = 32 * 1024

# Clients have nothing to say; a larger frame is an abuse and closes the connection (1009).
WS_MAX_FRAME_BYTES = 4096

# Reconnect backoff for the watcher after Redis is lost: start quick, cap low (Redis restarts fast).
WATCH_BACKOFF_START_S = 0.1
WATCH_BACKOFF_CAP_S = 5.0

# How long a POST waits for the watcher to see its own write, so a GET right after it agrees.
READ_YOUR_WRITE_WAIT_S = 1.0
