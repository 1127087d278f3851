"""Migrations: applied once, safe when several processes start at once."""

from __future__ import annotations

import asyncio
import re
import uuid

import asyncpg
import pytest

from fusou.db.migrate import available_migrations, migrate
from fusou.testing import PostgresForTests, database_url_with_name

pytestmark = pytest.mark.integration


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
                "fusou_quarantine",
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


async def test_the_buffer_is_partitioned_by_table_and_keeps_its_rows_across_the_change(
    postgres: PostgresForTests,
) -> None:
    """Rows written under the unpartitioned buffer (migrations 1-5) are all there after the
    partitioning migration, spread over its partitions, and the view still counts them."""
    name = f"fusou_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(database_url_with_name(postgres.admin_url, name))
    try:
        before = [m for m in available_migrations() if m.version <= 5]
        for m in before:
            await conn.execute(m.sql)
        await conn.execute(
            "INSERT INTO fusou_datasets (dataset_id) SELECT 'd' || i FROM generate_series(1, 20) i"
        )
        await conn.execute(
            "INSERT INTO fusou_tables (dataset_id, table_name, time_field) "
            "SELECT 'd' || i, 'battle', 'timestamp' FROM generate_series(1, 20) i"
        )
        await conn.execute(
            "INSERT INTO fusou_buffer "
            "SELECT n, t.table_id, n, n, 1, int8send(n), int8send(n) "
            "FROM fusou_tables t, generate_series(t.table_id * 1000, t.table_id * 1000 + 49) n"
        )
        await conn.execute(
            "CREATE TABLE fusou_schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.executemany(
            "INSERT INTO fusou_schema_migrations (version, name) VALUES ($1, $2)",
            [(m.version, m.name) for m in before],
        )
        expected = await conn.fetch("SELECT * FROM fusou_buffer ORDER BY seq")

        assert await migrate(conn) == [m.version for m in available_migrations()][5:]
        assert [tuple(r) for r in await conn.fetch("SELECT * FROM fusou_buffer ORDER BY seq")] == [
            tuple(r) for r in expected
        ]
        assert (
            await conn.fetchval("SELECT relkind::text FROM pg_class WHERE relname = 'fusou_buffer'")
            == "p"
        )
        partitions = await conn.fetch(
            "SELECT c.relname, count(b.*) AS n FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid "
            "LEFT JOIN fusou_buffer b ON b.tableoid = c.oid "
            "WHERE i.inhparent = 'fusou_buffer'::regclass GROUP BY c.relname"
        )
        assert len(partitions) == 8
        assert sum(r["n"] for r in partitions) == 1000
        assert sum(1 for r in partitions if r["n"] > 0) >= 4  # 20 tables spread out
        counted = await conn.fetchval("SELECT sum(hot_rows) FROM fusou_hot_cold_summary")
        assert counted == 1000
        # A statement naming its table reads one partition.
        plan = await conn.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT * FROM fusou_buffer WHERE table_id = 3 AND seq = 3000"
        )
        assert len(re.findall(r'"Relation Name": "fusou_buffer_p\d"', plan)) == 1
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_quarantine_migration_keeps_the_compaction_order_and_counts_quarantined_rows(
    postgres: PostgresForTests,
) -> None:
    """Datasets compacted before the migration keep their place in the scheduled order (their
    last attempt is their last success), and the summary view counts quarantined rows."""
    name = f"fusou_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(database_url_with_name(postgres.admin_url, name))
    try:
        before = [m for m in available_migrations() if m.version <= 6]
        for m in before:
            await conn.execute(m.sql)
        await conn.execute(
            "CREATE TABLE fusou_schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        await conn.executemany(
            "INSERT INTO fusou_schema_migrations (version, name) VALUES ($1, $2)",
            [(m.version, m.name) for m in before],
        )
        await conn.execute(
            "INSERT INTO fusou_datasets (dataset_id, compaction_needed, last_compacted_at) "
            "VALUES ('old', true, '2024-01-01T00:00:00Z'), ('new', true, NULL)"
        )
        await conn.execute(
            "INSERT INTO fusou_tables (dataset_id, table_name) VALUES ('old', 't'), ('new', 't')"
        )
        assert 7 in await migrate(conn)
        rows = await conn.fetch(
            "SELECT dataset_id, last_compacted_at, last_compaction_attempt_at "
            "FROM fusou_datasets ORDER BY dataset_id"
        )
        assert [(r["dataset_id"], r["last_compaction_attempt_at"]) for r in rows] == [
            ("new", None),
            ("old", rows[1]["last_compacted_at"]),
        ]
        await conn.execute(
            "INSERT INTO fusou_quarantine (table_id, seq, event_time, ingested_at, "
            "schema_version, dedup_key, record, reason) "
            "SELECT table_id, 1, -1, 0, 1, '\\x00', '\\x00', 'test' FROM fusou_tables "
            "WHERE dataset_id = 'old'"
        )
        counted = await conn.fetch(
            "SELECT dataset_id, hot_rows, quarantined_rows FROM fusou_hot_cold_summary "
            "ORDER BY dataset_id"
        )
        assert [tuple(r) for r in counted] == [("new", 0, 0), ("old", 0, 1)]
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def test_block_statistics_written_as_bytea_give_way_to_jsonb(
    postgres: PostgresForTests,
) -> None:
    """A database migrated when the statistics were bytea (migration 9) takes jsonb ones
    after migration 10: old statistics are dropped (those blocks are fetched), new ones fit."""
    name = f"fusou_mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(postgres.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    conn = await asyncpg.connect(database_url_with_name(postgres.admin_url, name))
    try:
        await conn.execute(
            "CREATE TABLE fusou_schema_migrations (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        before = [m for m in available_migrations() if m.version <= 9]
        for m in before:
            await conn.execute(m.sql)
        await conn.executemany(
            "INSERT INTO fusou_schema_migrations (version, name) VALUES ($1, $2)",
            [(m.version, m.name) for m in before],
        )
        assert (
            await conn.fetchval(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'fusou_blocks' AND column_name = 'column_stats'"
            )
            == "bytea"
        )
        assert 10 in await migrate(conn)
        assert (
            await conn.fetchval(
                "SELECT data_type FROM information_schema.columns "
                "WHERE table_name = 'fusou_blocks' AND column_name = 'column_stats'"
            )
            == "jsonb"
        )
    finally:
        await conn.close()
        await admin.execute(f'DROP DATABASE "{name}"')
        await admin.close()
