"""Running the registry under uvicorn, in the foreground, until SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import uvicorn

from .app import create_app
from .limits import Limits


def serve(
    host: str, port: int, db_path: str | Path, log_level: str = "info", busy_timeout: float = 10.0,
    limits: Limits | None = None,
) -> None:
    """Serve until a signal arrives; uvicorn then drains requests and the store closes cleanly.

    Logs go to stderr (uvicorn would send access logs to stdout), so a supervisor can keep stdout for data.
    """
    logging.basicConfig(
        stream=sys.stderr, level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = uvicorn.Config(
        create_app(db_path, busy_timeout, limits),
        host=host,
        port=port,
        log_config=None,
        log_level=log_level,
        lifespan="on",
    )
    uvicorn.Server(config).run()
