"""Pools: connections are reset on release, except in a pool declared stateless; failures of
PostgreSQL reach callers as Unavailable, and the pool recovers from them."""

from __future__ import annotations

import asyncio
import socket

import asyncpg
import pytest

from fusou.db.pool import create_pool
from fusou.errors import Unavailable
from fusou.objectstore import S3ObjectStore, TransientObjectStoreError
from fusou.testing import PostgresForTests


@pytest.mark.integration
@pytest.mark.parametrize(("stateless", "kept"), [(False, False), (True, True)])
async def test_release_resets_session_state_unless_stateless(
    database_url: str, stateless: bool, kept: bool
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1, stateless=stateless)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'left-behind'")
        async with pool.acquire() as conn:  # the same connection: the pool holds one
            name = await conn.fetchval("SHOW application_name")
        assert (name == "left-behind") is kept
    finally:
        await pool.close()


# -- failures: what a call sees, and how the pool recovers ---------------------------------------


async def _end_session(admin_url: str, pid: int) -> None:
    """``pg_terminate_backend`` from another session, then wait until the backend is gone."""
    admin = await asyncpg.connect(admin_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        for _ in range(1000):
            if not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            ):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"backend {pid} outlived pg_terminate_backend")
    finally:
        await admin.close()


async def _pid(conn: asyncpg.Connection) -> int:
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    assert isinstance(pid, int)
    return pid


@pytest.mark.integration
async def test_an_exhausted_pool_answers_unavailable_saying_so(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1, acquire_timeout=0.2)
    try:
        async with pool.acquire():
            with pytest.raises(Unavailable, match="connection pool is exhausted: all 1"):
                async with pool.acquire():
                    pass
        async with pool.acquire() as conn:  # given back, it serves again
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()


@pytest.mark.integration
@pytest.mark.parametrize("stateless", [False, True])
async def test_a_session_ended_while_idle_is_replaced_before_use(
    postgres: PostgresForTests, database_url: str, stateless: bool
) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1, stateless=stateless)
    try:
        noticed = asyncio.Event()
        async with pool.acquire() as conn:
            ended = await _pid(conn)
            conn.add_termination_listener(lambda _: noticed.set())
        await _end_session(postgres.admin_url, ended)
        # The client knows only once it has read the closed socket (until then, the next use
        # fails UNAVAILABLE and renews the pool's connections, see below).
        await asyncio.wait_for(noticed.wait(), 10)
        # Then the very next use succeeds, on a new session.
        async with pool.acquire() as conn:
            assert await _pid(conn) != ended
    finally:
        await pool.close()


@pytest.mark.integration
@pytest.mark.parametrize("stateless", [False, True])
async def test_a_session_ended_in_use_answers_unavailable_and_every_connection_is_renewed(
    postgres: PostgresForTests, database_url: str, stateless: bool
) -> None:
    pool = await create_pool(database_url, min_size=2, max_size=2, stateless=stateless)
    try:
        async with pool.acquire() as first, pool.acquire() as second:
            before = {await _pid(first), await _pid(second)}
        with pytest.raises(Unavailable, match="PostgreSQL") as raised:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT 1")
                await _end_session(postgres.admin_url, await _pid(conn))
                await conn.execute("SELECT 2")
        assert isinstance(raised.value.__cause__, asyncpg.InterfaceError | asyncpg.PostgresError)
        # The idle connection's session was fine, but sessions rarely end alone: both are new.
        async with pool.acquire() as first, pool.acquire() as second:
            after = {await _pid(first), await _pid(second)}
        assert after.isdisjoint(before)
    finally:
        await pool.close()


@pytest.mark.integration
async def test_an_sql_error_is_no_connection_failure(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            pid = await _pid(conn)
        with pytest.raises(asyncpg.DivisionByZeroError):
            async with pool.acquire() as conn:
                await conn.fetchval("SELECT 1 / 0")
        async with pool.acquire() as conn:
            assert await _pid(conn) == pid  # kept: nothing was wrong with it
    finally:
        await pool.close()


@pytest.mark.integration
async def test_a_refused_connection_answers_unavailable(database_url: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens there any more: the connection is refused at once.
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    with pytest.raises(Unavailable, match="cannot connect to PostgreSQL: ConnectionRefusedError"):
        await create_pool(url)


@pytest.mark.integration
async def test_an_object_store_connection_failure_keeps_the_database_connections(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    # Archive holds a transaction while it uploads: S3 out of reach fails the block with an
    # error whose chain ends in the socket's ConnectionRefusedError. That is the store's
    # connection, not PostgreSQL's: the session is fine and must be kept.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = S3ObjectStore("bucket", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1")
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            pid = await _pid(conn)
        with pytest.raises(TransientObjectStoreError) as raised:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT 1")
                await store.get("cold/x")
        assert _chain_has(raised.value, ConnectionRefusedError)
        async with pool.acquire() as conn:
            assert await _pid(conn) == pid  # kept: nothing was wrong with it
    finally:
        await pool.close()
        await store.close()


def _chain_has(exc: BaseException, kind: type[BaseException]) -> bool:
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, kind):
            return True
        current = current.__cause__ or current.__context__
    return False
