"""``alphafactory dashboard``: the read-only web dashboard (``app.dashboard``) on uvicorn,
at ``dashboard.host:dashboard.port`` (``stack status --json`` gives its URL as
``dashboard.url``); `stack up` runs it as one of the services.

SIGTERM and SIGINT stop it cleanly: uvicorn stops accepting, finishes the requests in
flight, closes the viewer's pool, and the process exits 0.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alphafactory.settings import Settings

log = logging.getLogger("alphafactory.dashboard")
GRACEFUL_SHUTDOWN_S = 10  # a page still rendering after this is cut off


def register(commands) -> None:
    parser = commands.add_parser(
        "dashboard",
        help="serve the read-only web dashboard (health, timeline, positions, alphas...)",
        description="Serves the read-only web dashboard at http://HOST:PORT/ "
        "(ALPHAFACTORY_DASHBOARD__HOST, ALPHAFACTORY_DASHBOARD__PORT; default "
        "127.0.0.1:18080), reading Postgres as the viewer role. `stack up` runs it.",
    )
    parser.set_defaults(handler=run)


def run(args, settings: Settings) -> int:
    from consumers.loop import stop_on_signals

    # first: a SIGTERM while the process still starts (imports, the viewer's pool) must
    # stop it cleanly too; uvicorn puts its own handler in place while it serves, then
    # puts this one back and raises the signal again, which this one takes (exit 0, not
    # killed by its own signal)
    stop = threading.Event()
    stop_on_signals(stop)
    import uvicorn

    from app import metrics_endpoint
    from app.dashboard.app import create_app

    metrics_endpoint.serve(settings, "dashboard")
    config = uvicorn.Config(
        create_app(settings),
        host=settings.dashboard.host,
        port=settings.dashboard.port,
        log_config=None,  # the process's logging (app.cli.main), as every service's
        access_log=False,  # probes would fill the log; errors are logged
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
    )
    server = uvicorn.Server(config)

    def stop_serving() -> None:  # a signal this process's handler took stops uvicorn too
        stop.wait()
        server.should_exit = True

    threading.Thread(target=stop_serving, name="dashboard-stop", daemon=True).start()
    if not stop.is_set():
        server.run()
    log.info("dashboard stopped")
    return 0
