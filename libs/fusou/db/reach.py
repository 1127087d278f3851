"""Reaching PostgreSQL at start: what goes wrong there becomes one line naming the variable that
points at the server and the cause, which a command prints instead of a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from fusou.errors import Unavailable

# What connecting and migrating raise for a server that is down or does not resolve, a URL
# asyncpg cannot parse (a port out of range, a bad option), a refused login, a missing database,
# or a migration the server refuses (permissions).
_DATABASE_ERRORS = (
    OSError,
    ValueError,
    OverflowError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    Unavailable,
)


class DatabaseUnreachable(Exception):
    """PostgreSQL at the configured URL cannot be used; the message is the line to print."""


def _cause(exc: BaseException) -> str:
    if isinstance(exc, Unavailable) and exc.__cause__ is not None:
        exc = exc.__cause__  # the pool's wrapper adds nothing a command line needs
    text = str(exc).strip()
    if text:
        return text
    return "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__


@asynccontextmanager
async def reaching_database(variable: str, action: str) -> AsyncIterator[None]:
    """Errors of the block, which does ``action`` (``"connect to PostgreSQL"``) with the server
    ``variable`` names, as one DatabaseUnreachable."""
    try:
        yield
    except _DATABASE_ERRORS as exc:
        raise DatabaseUnreachable(f"{variable}: cannot {action}: {_cause(exc)}") from exc
