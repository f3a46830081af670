"""`python -m powersim`: read settings, configure logging, serve until SIGINT or SIGTERM."""

from __future__ import annotations

import gc
import logging
import sys

import uvloop
from aiohttp import web

from .app import create_app
from .constants import SHUTDOWN_HANDLER_GRACE_S
from .errors import SettingsError, StartupError
from .logs import configure as configure_logging
from .settings import Settings

log = logging.getLogger("powersim")


async def freeze_start_up_objects(app: web.Application) -> None:
    """Everything allocated by start-up (modules, schema, app) lives until exit: keep it out of
    the collector's full passes, which otherwise stall the loop during large fan-outs. A process
    matter, so it is done here, not in the app (tests build many apps in one process)."""
    gc.freeze()


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"powersim: bad setting: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    # uvloop: measured about 10 % less server CPU per fan-out push (BENCHMARKS.md).
    loop = uvloop.new_event_loop() if settings.event_loop == "uvloop" else None
    app = create_app(settings)
    app.on_startup.append(freeze_start_up_objects)  # runs after the resources are open
    try:
        web.run_app(
            app,
            loop=loop,
            host=settings.host,
            port=settings.port,
            print=lambda _: log.info("serving on http://%s:%d", settings.host, settings.port),
            # Runs in flight were given POWERSIM_DRAIN_TIMEOUT by the app's on_shutdown hooks,
            # which come first; handlers left after that are only writing their last bytes.
            shutdown_timeout=SHUTDOWN_HANDLER_GRACE_S,
            access_log=None,
        )
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        return 1
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
