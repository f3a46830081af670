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

# A stored launch later than Redis's own clock (TIME) by more than this is treated as dated and
# replaced by the next run, instead of holding back every run until that date. Covers clock
# skew between the machines that launch runs and Redis; NTP keeps real skew far below it.
REDIS_CLOCK_ALLOWANCE_S = 5.0

# TCP keepalive on every Redis connection: probe after 10 s idle, every 5 s, give up after 3
# misses, so the kernel reports a Redis that vanished without a reset within about 25 s.
REDIS_KEEPALIVE_IDLE_S = 10
REDIS_KEEPALIVE_INTERVAL_S = 5
REDIS_KEEPALIVE_PROBES = 3

# The watcher's subscription is idle most of the time, and a connection dropped silently by a
# NAT or load balancer looks idle too: when nothing has arrived for WATCH_PING_INTERVAL_S, it
# pings over the subscription and reconnects if no answer comes within WATCH_PING_TIMEOUT_S.
# A change written to Redis after the subscription died is therefore pushed within about
# WATCH_PING_INTERVAL_S + WATCH_PING_TIMEOUT_S + a reconnect (about 3 s with these, 6 s at most).
WATCH_PING_INTERVAL_S = 2.0
WATCH_PING_TIMEOUT_S = 1.0

# A stored result that Redis refused (timeout, OOM, READONLY after a failover) is written again
# after 0.1 s, doubling up to 5 s between attempts, until Redis takes it or a newer one replaces it.
REPUBLISH_BACKOFF_START_S = 0.1
REPUBLISH_BACKOFF_CAP_S = 5.0

# GraphQL over a websocket gets the budget of an HTTP POST (MAX_BODY_BYTES): whatever may be
# POSTed may be sent as one `subscribe` message. GraphiQL's introspection query is ~1.5 KiB; a
# larger frame closes the connection (1009) before it is decoded.
GQL_WS_MAX_FRAME_BYTES = MAX_BODY_BYTES

# Query text is measured before it is parsed: the parser walks every byte, comments included
# (which MaxTokensLimiter does not count), so the cap bounds parsing time on every transport.
# Real queries here are a few hundred bytes; 8 KiB is 5x the introspection query.
GQL_MAX_QUERY_BYTES = 8 * 1024

# `details` selections per GraphQL operation (aliases and fragment spreads counted): enough to
# compare two runs; each can be megabytes, built on the event loop (gql/details_limit.py).
GQL_MAX_DETAILS = 2

# Operations in flight on one GraphQL websocket (strawberry counts queries and mutations too).
# One live subscription is all a client needs; a few leave room for a page or a run alongside.
GQL_MAX_OPERATIONS_PER_CONNECTION = 4

# At shutdown, how long one websocket may take to accept our close frame and answer it before
# its transport is aborted; the whole shutdown is also held to POWERSIM_DRAIN_TIMEOUT.
WS_CLOSE_TIMEOUT_S = 2.0

# Request paths, methods and header values reach log lines escaped and cut to this length.
LOG_FIELD_CHARS = 200

# After the drain (runs finished or abandoned, websockets closed), request handlers still
# running get this long before aiohttp cancels them (and as long again to unwind): they are
# only writing their answers by then. Must be > 0: aiohttp treats 0 as "wait forever".
SHUTDOWN_HANDLER_GRACE_S = 0.5

# SQLite waits this long for another writer's lock before a statement fails with "database is
# locked": a run's commit rides out a backup or a manual query; after that the run is a 503.
DB_BUSY_TIMEOUT_MS = 5000

# /healthz's database write probe waits less: a probe must answer within a probe's timeout
# (Kubernetes' default is 1 s), and a lock held longer than this already delays every run.
DB_PROBE_BUSY_TIMEOUT_MS = 500

# The probe also claims (and frees again) this many pages: a run's insert can split a table page
# and an index page, each up to the root, so a database with fewer free pages left than this is
# about to refuse runs, and /healthz says so a little early rather than late.
DB_PROBE_PAGES = 8

# At shutdown, workers get this long to finish before those still running an abandoned run are
# terminated (the drain has already waited POWERSIM_DRAIN_TIMEOUT for runs).
WORKER_STOP_TIMEOUT_S = 1.0
# A replacement worker that fails to start is tried again, backing off between these bounds.
WORKER_REWARM_BACKOFF_START_S = 1.0
WORKER_REWARM_BACKOFF_CAP_S = 30.0

# /healthz's database probe (a small write) runs at most once a second; callers in between share
# its answer, so a flood of health checks costs the database one write a second.
DB_PROBE_INTERVAL_S = 1.0

# A simulation's error text goes into the 500 answer and the log: cut it to this many characters.
MAX_ERROR_CHARS = 500

# Networks (see docs/networks.md). An upload larger than POWERSIM_MAX_NETWORK_BYTES is refused
# (413) as soon as its length or its bytes so far pass it; networks with more buses than
# POWERSIM_MAX_BUSES are refused (422). case9241pegase's to_json is 4 MB with 9,241 buses.
DEFAULT_MAX_NETWORK_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_BUSES = 20_000
# Networks a worker keeps built, least recently used dropped first: case9241pegase is ~60 MB.
NETWORK_CACHE_SIZE = 4
# POWERSIM_WORKER_MEMORY_MB must leave at least this much address space above what a worker
# holds once loaded (~1.5 GB of mostly reserved, untouched address space with pandapower).
WORKER_MEMORY_HEADROOM_MB = 512
# POWERSIM_RUN_TIMEOUT's default: the longest a run may take before its worker is replaced.
DEFAULT_RUN_TIMEOUT_S = 60.0
# Uploads are read from the request in chunks of this size while counting toward the cap.
UPLOAD_CHUNK_BYTES = 256 * 1024
# Describing a catalog network (building it once) is not a run: it may take this long even when
# POWERSIM_RUN_TIMEOUT is shorter (case9241pegase takes about a second to build).
DESCRIBE_TIMEOUT_S = 120.0
# Uploads being checked at once, per worker; beyond, 503 with Retry-After (each holds its body).
UPLOADS_PER_WORKER = 2
