"""A private PostgreSQL for ``fusou up`` and the tests when no server is configured.

The ``pgserver`` wheel ships real PostgreSQL binaries; it listens on a Unix socket only, and
when run as root it runs the server as an unprivileged system user (initdb refuses root). It is
the ``embedded`` extra, imported only here and only when a server is started: it has no wheel
for every Python FUSOU runs on, and nothing else needs it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fusou.config import ConfigError
from fusou.db.reach import DatabaseUnreachable

log = logging.getLogger(__name__)

EXTRA = "fusou[embedded]"


class EmbeddedPostgres:
    def __init__(
        self,
        data_dir: Path,
        *,
        delete_on_stop: bool = False,
        url_variable: str = "FUSOU_DATABASE_URL",
    ) -> None:
        self.data_dir = data_dir
        self._delete = delete_on_stop
        # The variable that, when set, makes this server unnecessary (named in errors).
        self._variable = url_variable
        self._server: Any = None
        # Checked here, so that a missing extra is reported before anything says "starting".
        try:
            import pgserver
        except ImportError as exc:
            raise ConfigError(
                f"{url_variable} is not set and the embedded PostgreSQL is not installed "
                f"({exc}): set {url_variable} to a PostgreSQL 14+ server, or install the "
                f"extra with pip install '{EXTRA}'"
            ) from None
        self._pgserver: Any = pgserver

    def start(self) -> str:
        """Start (or attach to) the server and return a DSN for the ``postgres`` database."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log.info("starting embedded PostgreSQL in %s", self.data_dir)
        try:
            self._server = self._pgserver.get_server(
                self.data_dir, cleanup_mode="delete" if self._delete else "stop"
            )
        except Exception as exc:
            raise DatabaseUnreachable(
                f"the embedded PostgreSQL in {self.data_dir} did not start "
                f"({type(exc).__name__}: {exc}); set {self._variable} to use another server"
            ) from exc
        return str(self._server.get_uri())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
