"""asyncpg pools."""

from __future__ import annotations

import asyncpg

from fusou.errors import Unavailable


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            # Statements are prepared per connection; the cache avoids re-planning hot queries.
            statement_cache_size=256,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise Unavailable(f"cannot connect to PostgreSQL: {exc}") from exc
    assert pool is not None
    return pool
