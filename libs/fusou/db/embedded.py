"""A private PostgreSQL for ``fusou up`` and the tests when no server is configured.

The ``pgserver`` wheel ships real PostgreSQL binaries; it listens on a Unix socket only, and
when run as root it runs the server as an unprivileged system user (initdb refuses root).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, *, delete_on_stop: bool = False) -> None:
        self.data_dir = data_dir
        self._delete = delete_on_stop
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server and return a DSN for the ``postgres`` database."""
        import pgserver

        self.data_dir.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", self.data_dir)
        self._server = pgserver.get_server(  # type: ignore[attr-defined]
            self.data_dir, cleanup_mode="delete" if self._delete else "stop"
        )
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
