"""``python -m fusou.db.watchdog PGDATA PARENT_PID``: stops the embedded PostgreSQL of PGDATA
once standard input ends, that is once the parent has stopped using it or has died, unless
another live process still uses it (see fusou.db.embedded)."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from fusou.db.embedded import stop_if_abandoned

log = logging.getLogger("fusou.db.watchdog")


def main(argv: list[str]) -> int:
    pgdata, parent = Path(argv[0]), int(argv[1])
    # Its own session keeps a terminal's signals away; a stray SIGINT must not end the watch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):
        pass
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    if stop_if_abandoned(pgdata, dead=parent):
        log.warning(
            "process %d ended without stopping the embedded PostgreSQL in %s; stopped it",
            parent,
            pgdata,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
