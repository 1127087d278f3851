"""Migrations: applied once, safe when several processes start at once."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from fusou.db.migrate import available_migrations, migrate
from fusou.testing import PostgresForTests, database_url_with_name


async def test_concurrent_migrations_apply_each_version_once(postgres: PostgresForTests) -> None:
    name = f"fusou_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = database_url_with_name(postgres.admin_url, name)
    try:
        conns = [await asyncpg.connect(url) for _ in range(5)]
        try:
            applied = await asyncio.gather(*(migrate(c) for c in conns))
        finally:
            for c in conns:
                await c.close()
        versions = [m.version for m in available_migrations()]
        flattened = sorted(v for result in applied for v in result)
        assert flattened == versions  # each applied exactly once, by exactly one caller
        conn = await asyncpg.connect(url)
        try:
            rows = await conn.fetch("SELECT version FROM fusou_schema_migrations ORDER BY version")
            assert [r["version"] for r in rows] == versions
            assert await migrate(conn) == []
            tables = {
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                )
            }
            assert {
                "fusou_buffer",
                "fusou_datasets",
                "fusou_tables",
                "fusou_table_schemas",
                "fusou_objects",
                "fusou_files",
                "fusou_blocks",
                "fusou_ingest_requests",
            } <= tables
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_sequence_blocks_are_contiguous_and_disjoint(database_url: str) -> None:
    conns = [await asyncpg.connect(database_url) for _ in range(4)]
    try:

        async def take(c: asyncpg.Connection, n: int) -> list[int]:
            out: list[int] = []
            for _ in range(20):
                first = await c.fetchval("SELECT fusou_allocate_seq($1)", n)
                out.extend(range(first, first + n))
            return out

        results = await asyncio.gather(
            *(take(c, n) for c, n in zip(conns, [1, 7, 100, 3], strict=True))
        )
    finally:
        for c in conns:
            await c.close()
    everything = [v for r in results for v in r]
    assert len(everything) == len(set(everything)) == 20 * (1 + 7 + 100 + 3)
