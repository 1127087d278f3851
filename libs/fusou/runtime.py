"""What a service process shares between its servicers: settings, the pool, the catalog cache,
the object store. Opened once at start, after migrations."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from fusou import cpu
from fusou.catalog.tables import TableRegistry
from fusou.clock import SYSTEM_CLOCK, Clock
from fusou.config import ConfigError, Settings
from fusou.db.migrate import migrate
from fusou.db.pool import create_pool
from fusou.db.reach import reaching_database
from fusou.objectstore.base import ObjectStore
from fusou.objectstore.factory import open_object_store


@dataclass
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    store: ObjectStore
    registry: TableRegistry
    # For single read-only statements only (the reader's snapshot): released without a reset.
    read_pool: asyncpg.Pool
    # What the domain reads the wall clock from; tests inject one they can move.
    clock: Clock = field(default=SYSTEM_CLOCK)

    async def close(self) -> None:
        await self.store.close()
        await self.read_pool.close()
        await self.pool.close()


async def open_runtime(settings: Settings, clock: Clock = SYSTEM_CLOCK) -> Runtime:
    missing = [
        name
        for name, value in (
            ("FUSOU_DATABASE_URL", settings.database.url),
            ("FUSOU_OBJECT_STORE_URL", settings.store.url),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            "missing configuration: " + ", ".join(missing) + " (`fusou up` provides defaults)"
        )
    assert settings.database.url is not None and settings.store.url is not None
    cpu.configure(settings.server.cpu_workers)
    async with reaching_database("FUSOU_DATABASE_URL", "connect to PostgreSQL"):
        pool = await create_pool(
            settings.database.url,
            max_size=settings.database.pool_size,
            acquire_timeout=settings.database.acquire_timeout_s,
        )
    read_pool: asyncpg.Pool | None = None
    try:
        async with (
            reaching_database("FUSOU_DATABASE_URL", "migrate the database"),
            pool.acquire() as conn,
        ):
            await migrate(conn)
        async with reaching_database("FUSOU_DATABASE_URL", "connect to PostgreSQL"):
            read_pool = await create_pool(
                settings.database.url,
                max_size=settings.database.pool_size,
                stateless=True,
                acquire_timeout=settings.database.acquire_timeout_s,
            )
        store = open_object_store(
            settings.store.url,
            endpoint_url=settings.store.s3_endpoint_url,
            region=settings.store.s3_region,
        )
    except BaseException:
        if read_pool is not None:
            await read_pool.close()
        await pool.close()
        raise
    registry = TableRegistry(pool, max_fields=settings.rows.max_fields)
    return Runtime(settings, pool, store, registry, read_pool, clock)
