"""PostgreSQL advisory locks: which lock classes FUSOU uses, and how one is taken.

A lock is a (class, key) pair of integers: the class says what is locked ("archiving a
table"), the key which one (the table id). Session locks, not transaction locks: they outlive
the transactions taken under them, and a crashed holder's lock goes away with its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from typing import Final

import asyncpg

# Arbitrary, fixed numbers: they identify FUSOU's locks among a database's advisory locks.
# Applying the schema migrations (key 0).
MIGRATION_LOCK: Final = 7239011
# Archiving table N (the key is the table id); also shields its new cold objects from the sweep.
ARCHIVE_LOCK: Final = 7239012
# Compacting table N (the key is the table id); also shields its new outputs from the sweep.
COMPACT_LOCK: Final = 7239013
# Publishing table N's Iceberg table (the key is the table id): one commit at a time per table.
LAKE_LOCK: Final = 7239014
# Purging a dataset (the key is ``fusou.catalog.fence.dataset_key``): one purge of a dataset
# at a time. (7239016 is the fence's, in ``fusou.catalog.fence``.)
PURGE_LOCK: Final = 7239015


@contextlib.asynccontextmanager
async def try_lock(conn: asyncpg.Connection, lock: int, key: int) -> AsyncIterator[bool]:
    """Try to take the lock on ``conn`` without waiting: yields whether it was taken, and
    releases it on the way out when it was."""
    locked = bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", lock, key))
    try:
        yield locked
    finally:
        if locked:
            await conn.execute("SELECT pg_advisory_unlock($1, $2)", lock, key)


@contextlib.asynccontextmanager
async def wait_lock(conn: asyncpg.Connection, lock: int, key: int) -> AsyncIterator[None]:
    """Take the lock on ``conn``, waiting for its holder, and release it on the way out."""
    await conn.execute("SELECT pg_advisory_lock($1, $2)", lock, key)
    try:
        yield
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", lock, key)


@contextlib.asynccontextmanager
async def try_pool_lock(pool: asyncpg.Pool, lock: int, key: int) -> AsyncIterator[bool]:
    """``try_lock`` on a connection of its own, held (and kept from the pool) while locked."""
    async with pool.acquire() as conn, try_lock(conn, lock, key) as locked:
        yield locked


# Per (lock, key), this process's turn: waiters queue here, holding no connection.
_LOCAL: weakref.WeakValueDictionary[tuple[int, int], asyncio.Lock] = weakref.WeakValueDictionary()
# How long a waiter for another process's holder sleeps between tries, at most.
_MAX_POLL_S = 0.5


@contextlib.asynccontextmanager
async def wait_pool_lock(pool: asyncpg.Pool, lock: int, key: int) -> AsyncIterator[None]:
    """Take the lock on a connection of its own, waiting for its holder without keeping a
    connection from the pool meanwhile (the holder may need several): waiters in this process
    queue on an asyncio lock, and the first polls the advisory lock."""
    local = _LOCAL.get((lock, key))
    if local is None:
        local = _LOCAL[(lock, key)] = asyncio.Lock()
    async with local:
        delay = 0.02
        while True:
            async with try_pool_lock(pool, lock, key) as locked:
                if locked:
                    yield
                    return
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_POLL_S)
