"""Versioned schema migrations, applied in order under an advisory lock.

Every service applies them at start, so several processes may race here: the lock makes the
first one apply and the others wait, then find nothing left to do.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import asyncpg

from fusou.db.reach import reaching_database
from fusou.storage.locks import MIGRATION_LOCK, wait_lock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found: list[Migration] = []
    folder = resources.files("fusou.db") / "migrations"
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        number, _, rest = entry.name.partition("_")
        found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migration versions must be 1..n without gaps, found {versions}")
    return found


async def migrate(conn: asyncpg.Connection) -> list[int]:
    """Apply pending migrations; return the versions applied by this call."""
    applied_now: list[int] = []
    async with wait_lock(conn, MIGRATION_LOCK, 0):
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS fusou_schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = {
            r["version"] for r in await conn.fetch("SELECT version FROM fusou_schema_migrations")
        }
        for m in available_migrations():
            if m.version in done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO fusou_schema_migrations (version, name) VALUES ($1, $2)",
                    m.version,
                    m.name,
                )
            log.info("applied migration %04d_%s", m.version, m.name)
            applied_now.append(m.version)
    return applied_now


async def migrate_url(dsn: str) -> list[int]:
    """Apply the migrations to the database at ``dsn`` (``FUSOU_DATABASE_URL``: a server that
    cannot be used raises a DatabaseUnreachable naming it)."""
    async with reaching_database("FUSOU_DATABASE_URL", "connect to PostgreSQL"):
        conn = await asyncpg.connect(dsn)
    try:
        async with reaching_database("FUSOU_DATABASE_URL", "migrate the database"):
            return await migrate(conn)
    finally:
        await conn.close()
