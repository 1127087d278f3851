"""The lake's rows in PostgreSQL (``fusou_lake_files``, ``fusou_lake_tables``): which data file
holds which day of a table, built from which of the table's files, and in which state.

A file is ``written`` from before its object exists until the publisher has seen the Iceberg
commit naming it, then ``published``; a file no snapshot names any more, or that a crashed
publisher wrote but never committed, is ``retired`` and deleted after the grace period.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg

from fusou.storage.partitions import DAY_MS

WRITTEN = "written"
PUBLISHED = "published"
RETIRED = "retired"


@dataclass(frozen=True)
class LakeFile:
    lake_file_id: int
    day: int
    object_key: str | None  # None: the day holds no row, and has no file
    location: str | None
    source_files: tuple[int, ...]
    row_count: int
    digest: bytes
    state: str


@dataclass(frozen=True)
class LiveFile:
    """One of the table's active catalog files: the days its rows span."""

    file_id: int
    first_day: int
    last_day: int


async def live_files(conn: asyncpg.Connection, table_id: int) -> list[LiveFile]:
    rows = await conn.fetch(
        "SELECT file_id, floor(min_time::numeric / $2)::int AS first_day, "
        "       floor(max_time::numeric / $2)::int AS last_day "
        "FROM fusou_files WHERE table_id = $1 AND state = 'active' AND row_count > 0",
        table_id,
        DAY_MS,
    )
    return [LiveFile(r["file_id"], r["first_day"], r["last_day"]) for r in rows]


async def block_times(
    conn: asyncpg.Connection, table_id: int, start: int, end: int
) -> list[tuple[int, int, int]]:
    """(min_time, max_time, rows) of the live blocks reaching into [start, end), by min_time."""
    rows = await conn.fetch(
        "SELECT b.min_time, b.max_time, b.row_count FROM fusou_files f "
        "JOIN fusou_blocks b USING (file_id) "
        "WHERE f.table_id = $1 AND f.state = 'active' AND b.min_time < $3 AND b.max_time >= $2 "
        "ORDER BY b.min_time",
        table_id,
        start,
        end,
    )
    return [(r["min_time"], r["max_time"], r["row_count"]) for r in rows]


async def current_files(conn: asyncpg.Connection, table_id: int) -> list[LakeFile]:
    rows = await conn.fetch(
        "SELECT lake_file_id, day, object_key, location, source_files, row_count, digest, state "
        "FROM fusou_lake_files WHERE table_id = $1 AND state <> 'retired' ORDER BY day",
        table_id,
    )
    return [
        LakeFile(
            r["lake_file_id"],
            r["day"],
            r["object_key"],
            r["location"],
            tuple(r["source_files"]),
            r["row_count"],
            bytes(r["digest"]),
            r["state"],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Published:
    """What FUSOU last left the table's Iceberg table at, and where the catalog says it is."""

    schema_version: int | None
    metadata_location: str | None
    catalog_location: str | None

    def current(self, version: int) -> bool:
        return (
            self.schema_version == version
            and self.catalog_location is not None
            and self.catalog_location == self.metadata_location
        )


async def published(
    conn: asyncpg.Connection, catalog: str, table_id: int, dataset_id: str, table: str
) -> Published:
    row = await conn.fetchrow(
        "SELECT (SELECT schema_version FROM fusou_lake_tables WHERE table_id = $1) AS version, "
        "       (SELECT metadata_location FROM fusou_lake_tables WHERE table_id = $1) AS ours, "
        "       (SELECT metadata_location FROM iceberg_tables WHERE catalog_name = $2 "
        "          AND table_namespace = $3 AND table_name = $4) AS theirs",
        table_id,
        catalog,
        dataset_id,
        table,
    )
    assert row is not None
    return Published(row["version"], row["ours"], row["theirs"])


async def add_written(
    conn: asyncpg.Connection,
    table_id: int,
    day: int,
    object_key: str,
    location: str,
    source_files: Sequence[int],
    row_count: int,
    digest: bytes,
) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO fusou_lake_files "
            "(table_id, day, object_key, location, source_files, row_count, digest) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING lake_file_id",
            table_id,
            day,
            object_key,
            location,
            list(source_files),
            row_count,
            digest,
        )
    )


async def settle(
    conn: asyncpg.Connection,
    *,
    published: Iterable[int],
    retired: Iterable[int],
    sources: dict[int, Sequence[int]],
    now_ms: int,
    table_id: int = 0,
    empty: Sequence[tuple[int, Sequence[int], bytes]] = (),
) -> None:
    """After a commit (or after reading what the snapshot names): mark files published and
    retired, record the sources of days whose rows did not change, and the (day, sources,
    digest) of days found empty. One transaction."""
    async with conn.transaction():
        # An empty day's row names no object: retired, it simply goes.
        await conn.execute(
            "DELETE FROM fusou_lake_files WHERE lake_file_id = ANY($1) AND object_key IS NULL",
            list(retired),
        )
        if empty:
            await conn.executemany(
                "INSERT INTO fusou_lake_files "
                "(table_id, day, source_files, row_count, digest, state) "
                "VALUES ($1, $2, $3, 0, $4, 'published')",
                [(table_id, day, list(srcs), digest) for day, srcs, digest in empty],
            )
        await conn.execute(
            "UPDATE fusou_lake_files SET state = 'published' WHERE lake_file_id = ANY($1)",
            list(published),
        )
        await conn.execute(
            "UPDATE fusou_lake_files SET state = 'retired', retired_at = $2 "
            "WHERE lake_file_id = ANY($1) AND state <> 'retired'",
            list(retired),
            now_ms,
        )
        if sources:
            await conn.executemany(
                "UPDATE fusou_lake_files SET source_files = $2 WHERE lake_file_id = $1",
                [(i, list(s)) for i, s in sources.items()],
            )


async def set_published(
    conn: asyncpg.Connection, table_id: int, version: int, metadata_location: str
) -> None:
    await conn.execute(
        "INSERT INTO fusou_lake_tables (table_id, schema_version, metadata_location) "
        "VALUES ($1, $2, $3) ON CONFLICT (table_id) DO UPDATE "
        "SET schema_version = $2, metadata_location = $3, published_at = now()",
        table_id,
        version,
        metadata_location,
    )


async def set_metadata_location(
    conn: asyncpg.Connection, table_id: int, metadata_location: str
) -> None:
    await conn.execute(
        "UPDATE fusou_lake_tables SET metadata_location = $2 WHERE table_id = $1",
        table_id,
        metadata_location,
    )


@dataclass(frozen=True)
class RetiredFile:
    lake_file_id: int
    table_id: int
    object_key: str


async def retired_before(
    conn: asyncpg.Connection, dataset_id: str | None, cutoff_ms: int
) -> list[RetiredFile]:
    rows = await conn.fetch(
        "SELECT l.lake_file_id, l.table_id, l.object_key FROM fusou_lake_files l "
        "JOIN fusou_tables t USING (table_id) "
        "WHERE l.state = 'retired' AND l.retired_at < $2 AND ($1::text IS NULL OR t.dataset_id = $1)",
        dataset_id,
        cutoff_ms,
    )
    return [RetiredFile(r["lake_file_id"], r["table_id"], r["object_key"]) for r in rows]


async def forget(conn: asyncpg.Connection, lake_file_ids: Sequence[int]) -> None:
    await conn.execute(
        "DELETE FROM fusou_lake_files WHERE lake_file_id = ANY($1)", list(lake_file_ids)
    )
