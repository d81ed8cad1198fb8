"""Run one nubes server in the foreground: what nubes.services builds for the settings (the
store, the host agent, the API app, with the web console mounted at /console/), served by uvicorn until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import sys

import uvicorn

from nubes.config import Settings
from nubes.console.app import WithConsole
from nubes.console.sessions import Sessions
from nubes.services import build_node

log = logging.getLogger("nubes")


def serve(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    node = build_node(settings)
    node.start()
    log.info(
        "nubes listening on http://%s:%d (data %s, store %s)",
        settings.host,
        settings.port,
        node.services.data_dir,
        node.services.db.engine.url.render_as_string(hide_password=True),
    )
    config = uvicorn.Config(
        WithConsole(
            node.app, Sessions(idle_seconds=settings.console_idle_seconds)
        ),  # the web console at /console/, the API everywhere else
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level=settings.log_level,
        lifespan="on",
        server_header=False,
        timeout_graceful_shutdown=10,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        node.stop()
