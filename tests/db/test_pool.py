"""Pools: connections are reset on release, except in a pool declared stateless."""

from __future__ import annotations

import pytest

from fusou.db.pool import create_pool


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
