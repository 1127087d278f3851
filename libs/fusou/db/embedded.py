"""A private PostgreSQL for ``fusou up`` and the tests when no server is configured.

The ``pgserver`` wheel ships real PostgreSQL binaries; it listens on a Unix socket only, and
when run as root it runs the server as an unprivileged system user (initdb refuses root). It is
the ``embedded`` extra, imported only here and only when a server is started: it has no wheel
for every Python FUSOU runs on, and nothing else needs it.

pgserver starts the postmaster detached (through ``pg_ctl``) and stops it when the last process
using it exits cleanly; it keeps the users' pids in a file of the data directory. A process
killed outright (SIGKILL, the OOM killer) neither stops the server nor leaves that file, so the
server would run on, and every later user would find a dead pid there and never stop it either.
Hence a watchdog: a small process, in a session of its own so a terminal's Ctrl-C reaches only
``fusou up``, that reads a pipe from its parent until end-of-file (the parent stopped or died,
either way) and then stops the server unless a live process still uses it. Dead pids are also
dropped from the file at every start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Final

from fusou.config import ConfigError
from fusou.db.reach import DatabaseUnreachable

log = logging.getLogger(__name__)

_HANDLES: Final = ".handle_pids.json"
# How long the watchdog waits for a fast shutdown, and ``stop`` for the watchdog.
_STOP_TIMEOUT_S: Final = 30.0


def _is_live(pid: int) -> bool:
    import psutil

    try:
        # A killed process stays a zombie until its own parent reaps it: it uses nothing.
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _pgserver_lock() -> Any:
    """The inter-process lock pgserver holds while it starts, attaches to or stops a server."""
    from pgserver.postgres_server import PostgresServer

    # Not public, but pgserver offers no other way to serialize with its own starts and stops.
    return PostgresServer._lock  # noqa: SLF001


def forget_dead_users(pgdata: Path, *, dead: int | None = None) -> list[int]:
    """Drop the pids of processes that are gone (and ``dead``, known gone) from pgserver's list
    of the server's users; the live ones that remain. Call it holding pgserver's lock."""
    from pgserver.utils import DiskList

    users = DiskList(pgdata / _HANDLES)
    pids = users.get()
    live = [pid for pid in pids if pid != dead and _is_live(pid)]
    if live != pids:
        users.put(live)
    return live


def stop_if_abandoned(pgdata: Path, dead: int) -> bool:
    """Fast-shut the server of ``pgdata`` down unless a live process still uses it; whether it
    was stopped. ``dead`` is a user known to be gone whatever its pid looks like now."""
    import psutil
    from pgserver.utils import PostmasterInfo

    with _pgserver_lock():
        if forget_dead_users(pgdata, dead=dead):
            return False
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is None or info.process is None or not info.is_running():
            return False
        # SIGINT is PostgreSQL's fast shutdown: sessions are ended, the data is checkpointed.
        info.process.send_signal(signal.SIGINT)
        try:
            info.process.wait(_STOP_TIMEOUT_S)
        except psutil.TimeoutExpired:
            log.warning("PostgreSQL in %s is still shutting down", pgdata)
    return True


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
        self._watchdog: subprocess.Popen[bytes] | None = None
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
        pgdata = self.data_dir.expanduser().resolve()
        with _pgserver_lock():
            forget_dead_users(pgdata)
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
        self._watchdog = subprocess.Popen(
            [sys.executable, "-m", "fusou.db.watchdog", str(pgdata), str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=os.name == "posix",
        )
        return str(self._server.get_uri())

    def stop(self) -> None:
        try:
            if self._server is not None:
                self._server.cleanup()
                self._server = None
        finally:
            self._dismiss_watchdog()

    def _dismiss_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        # End of file: the watchdog finds this process gone from the users (or, if the stop
        # above failed, stops the server itself) and exits.
        assert watchdog.stdin is not None
        watchdog.stdin.close()
        try:
            watchdog.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning("the embedded PostgreSQL's watchdog did not exit; killing it")
            with contextlib.suppress(ProcessLookupError):
                watchdog.kill()
            watchdog.wait()
