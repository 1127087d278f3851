"""asyncpg pools that report PostgreSQL's failures as domain errors and recover from them.

Every connection is used inside ``async with pool.acquire() as conn``; that block is the
boundary where asyncpg's exceptions are classified (``fusou.db.failures``): a lost connection,
a terminated session or a server shutting down leaves it as ``Unavailable`` naming the cause,
and a connection broken that way is dropped instead of going back to the pool. Waiting for a
connection is bounded (``FUSOU_DB_ACQUIRE_TIMEOUT_S``): an exhausted pool answers
``Unavailable`` saying so instead of holding the call until its deadline.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

import asyncpg

from fusou.db.failures import breaks_connection, database_failure, describe
from fusou.errors import Unavailable

log = logging.getLogger(__name__)

DEFAULT_ACQUIRE_TIMEOUT_S = 30.0


async def _keep_as_is(connection: asyncpg.Connection) -> None:
    return None


class Pool(asyncpg.Pool):  # type: ignore[misc]  # asyncpg ships no type information
    """An asyncpg pool whose ``acquire`` bounds the wait and translates failures."""

    def __init__(self, *args: Any, acquire_timeout: float | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> _Acquire:
        return _Acquire(self, self.acquire_timeout if timeout is None else timeout)


class _Acquire:
    """``async with pool.acquire() as conn`` (asyncpg's own context, wrapped)."""

    __slots__ = ("_connection", "_context", "_pool", "_timeout")

    def __init__(self, pool: Pool, timeout: float | None) -> None:
        self._pool = pool
        self._timeout = timeout
        self._context = asyncpg.Pool.acquire(pool, timeout=timeout)
        self._connection: Any = None

    async def __aenter__(self) -> Any:
        try:
            self._connection = await self._context.__aenter__()
        except TimeoutError:
            raise _exhausted(self._pool, self._timeout) from None
        except OSError as exc:
            # Connecting (a new connection or one replacing a dropped one) failed.
            raise Unavailable(f"cannot connect to PostgreSQL: {describe(exc)}") from exc
        except Exception as exc:
            failure = database_failure(exc)
            if failure is None:
                raise
            raise failure from exc
        return self._connection

    def __await__(self) -> Any:
        # ``conn = await pool.acquire()``, released with ``pool.release(conn)``: only entering
        # is translated then.
        return self.__aenter__().__await__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self._connection
        self._connection = None
        # asyncpg takes a connection back from its holder the moment the socket closes: a
        # connection lost while held (between statements, say) then only fails the next use.
        lost = exc is not None and connection is not None and _taken_back(connection)
        broken = exc is not None and (lost or breaks_connection(exc))
        if broken:
            # A session the server ended may still look open (its farewell read, not yet its
            # closed socket); given back, the next caller would fail the same way.
            if not lost and connection is not None:
                connection.terminate()
            # Sessions rarely end alone (a restart, a failover, an operator ending them all):
            # the idle ones are replaced too, rather than each failing one more call.
            log.info("a PostgreSQL connection broke; replacing the pool's connections")
            await self._pool.expire_connections()
        try:
            await self._context.__aexit__(exc_type, exc, tb)
        except Exception as release_error:
            if database_failure(release_error) is None:
                raise
            # Giving back a connection whose session is gone failed (its reset met a closed
            # socket); asyncpg has dropped it and opens another when needed. Whatever the work
            # did is what the caller must hear about: done, or its own failure.
            log.info("dropped a PostgreSQL connection on release: %s", describe(release_error))
            if exc is None:
                return
        if isinstance(exc, Exception):
            failure = database_failure(exc)
            if failure is None and lost and isinstance(exc, asyncpg.InterfaceError):
                failure = Unavailable(
                    f"lost the connection to PostgreSQL while using it: {describe(exc)}"
                )
            if failure is not None:
                raise failure from exc


def _taken_back(connection: Any) -> bool:
    """Whether the pool took ``connection`` back before its user was done: asyncpg does so
    only when the connection closed (the server ended the session, the socket broke)."""
    try:
        return bool(connection.is_closed())
    except asyncpg.InterfaceError:
        # A connection no longer held answers nothing but "released back to the pool".
        return True


def _exhausted(pool: Pool, timeout: float | None) -> Unavailable:
    waited = "the time allowed" if timeout is None else f"{timeout:g}s"
    size, idle, most = pool.get_size(), pool.get_idle_size(), pool.get_max_size()
    if size >= most and idle == 0:
        return Unavailable(
            f"the PostgreSQL connection pool is exhausted: all {most} connections stayed in use "
            f"for {waited} (FUSOU_DB_ACQUIRE_TIMEOUT_S, FUSOU_DB_POOL_SIZE)"
        )
    return Unavailable(f"PostgreSQL did not accept a new connection within {waited}")


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    stateless: bool = False,
    acquire_timeout: float | None = DEFAULT_ACQUIRE_TIMEOUT_S,
) -> asyncpg.Pool:
    """A pool; ``stateless`` for connections that only ever run single statements which leave
    nothing behind (no locks, cursors, listeners or settings), so that releasing one skips
    the reset round trip (0.5-0.8 ms of every read, measured). ``acquire_timeout`` bounds the
    wait for a connection (None: no bound)."""
    pool = Pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        acquire_timeout=acquire_timeout,
        # Statements are prepared per connection; the cache avoids re-planning hot queries.
        statement_cache_size=256,
        reset=_keep_as_is if stateless else None,
    )
    try:
        await pool
    except (OSError, asyncpg.PostgresError) as exc:
        raise Unavailable(f"cannot connect to PostgreSQL: {describe(exc)}") from exc
    return pool
