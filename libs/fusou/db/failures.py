"""Which PostgreSQL failures are the database's (a lost connection, a server going down, no
resources, a refused login) and the domain error each one stands for.

The one place that reads asyncpg's exceptions: the pool (``fusou.db.pool``) translates them
where a connection is given back, so that whatever catches them later (a scheduled run that
reports a failed table, the error map) sees ``Unavailable`` with the cause; the error map
(``fusou.server.status``) applies the same rules to anything raised outside a pool.
"""

from __future__ import annotations

import asyncpg

from fusou.errors import DeadlineExceeded, FusouError, Unavailable
from fusou.objectstore.base import ObjectStoreError

# What asyncpg says, as an InterfaceError, when a connection or the pool is no longer there
# ("connection is closed", "the underlying connection is closed", "pool is closing", ...).
_GONE = ("connection is closed", "connection was closed", "pool is closing", "pool is closed")

# Each class of server error that means "the database cannot serve this now", with what to
# tell the client. Subclasses come before their bases.
_SERVER_CLASSES: tuple[tuple[type[BaseException], str], ...] = (
    (asyncpg.exceptions.CannotConnectNowError, "PostgreSQL is starting up or shutting down"),
    (asyncpg.exceptions.OperatorInterventionError, "PostgreSQL ended the session"),
    (asyncpg.exceptions.IdleInTransactionSessionTimeoutError, "PostgreSQL ended the session"),
    (asyncpg.exceptions.InsufficientResourcesError, "PostgreSQL is out of resources"),
    (asyncpg.exceptions.PostgresSystemError, "PostgreSQL failed with a system error"),
    (
        asyncpg.exceptions.InvalidAuthorizationSpecificationError,
        "PostgreSQL refused this service's login (a configuration problem)",
    ),
    (
        asyncpg.exceptions.InvalidCatalogNameError,
        "PostgreSQL has no such database (a configuration problem)",
    ),
    (asyncpg.exceptions.PostgresConnectionError, "lost the connection to PostgreSQL"),
)
# A protocol violation is a connection error by SQLSTATE, but a bug of the client library.
_NOT_THE_SERVERS = (asyncpg.exceptions.ProtocolViolationError,)
# How far along __cause__/__context__ a library error is searched for the failure behind it.
_CHAIN_DEPTH = 8


def describe(exc: BaseException) -> str:
    """``Type [SQLSTATE]: message``: enough to tell one failure from another in a log."""
    state = getattr(exc, "sqlstate", None)
    code = f" [{state}]" if isinstance(state, str) else ""
    text = str(exc).strip()
    return f"{type(exc).__name__}{code}: {text}" if text else f"{type(exc).__name__}{code}"


def database_failure(exc: BaseException) -> FusouError | None:
    """``Unavailable`` (or ``DeadlineExceeded``) naming PostgreSQL and the cause when ``exc``
    is the database failing rather than this program; None otherwise (a constraint violation,
    a serialization failure or a bug keep their own meaning)."""
    if not _from_asyncpg(exc):
        return _classify(exc)
    # asyncpg often reports a loss a second time on the way out (a transaction that cannot
    # roll back on a closed connection): the failure behind it is the one to name.
    symptom = isinstance(
        exc, asyncpg.exceptions.InterfaceError | asyncpg.exceptions.InternalClientError
    )
    direct = None if symptom else _classify(exc)
    if direct is not None:
        return direct
    seen = 0
    cause = exc.__cause__ or exc.__context__
    while cause is not None and seen < _CHAIN_DEPTH:
        found = _classify(cause)
        if found is not None:
            return found
        cause = cause.__cause__ or cause.__context__
        seen += 1
    return _classify(exc) if symptom else None


def _classify(exc: BaseException) -> FusouError | None:
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError):
        if "timeout" in str(exc):
            # statement_timeout or lock_timeout: PostgreSQL's own deadline.
            return DeadlineExceeded(f"PostgreSQL did not finish in time: {describe(exc)}")
        return Unavailable(f"PostgreSQL cancelled the statement: {describe(exc)}")
    if isinstance(exc, _NOT_THE_SERVERS):
        return None
    for kind, what in _SERVER_CLASSES:
        if isinstance(exc, kind):
            return Unavailable(f"{what}: {describe(exc)}")
    if isinstance(exc, asyncpg.exceptions.InterfaceError) and any(
        gone in str(exc) for gone in _GONE
    ):
        return Unavailable(f"lost the connection to PostgreSQL: {describe(exc)}")
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        # The client lost track of the conversation, in practice because the server ended the
        # session while the connection sat idle in the pool: its farewell arrives unasked, and
        # the next statement finds the protocol in an error state. The pool drops such a
        # connection (see fusou.db.pool), so a retry gets a new one.
        return Unavailable(f"the connection to PostgreSQL broke: {describe(exc)}")
    return None


def _from_asyncpg(exc: BaseException) -> bool:
    return type(exc).__module__.startswith("asyncpg")


def breaks_connection(exc: BaseException) -> bool:
    """Whether a connection that raised ``exc`` (or an error behind it) is done for: its
    session ended, its socket closed, or its protocol state is lost. Such a connection must
    not go back to the pool, where the next caller would get the same error."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen <= _CHAIN_DEPTH:
        if isinstance(current, ObjectStoreError):
            # The object store's failure, and what is behind it (a socket refused by S3) is
            # the store's connection, not this one: used inside a transaction (an archive's
            # upload), it must not cost a healthy session and the whole pool.
            return False
        if isinstance(current, _BROKEN) and not isinstance(
            current, asyncpg.exceptions.QueryCanceledError
        ):
            return True
        if isinstance(current, asyncpg.exceptions.InterfaceError) and any(
            gone in str(current) for gone in _GONE
        ):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


# Errors after which the connection they came from is unusable (a cancelled statement is not
# among them: the session goes on).
_BROKEN = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
)
