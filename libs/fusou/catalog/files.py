"""The catalog's rows of object-store objects: registering objects, their files and block
index, retiring replaced files, finding unregistered keys, and forgetting deleted objects.

An object (``fusou_objects``) is one key in the store; it holds one file (``fusou_files``) or,
for a raw bundle, several; a file's blocks (``fusou_blocks``) index its bytes. Every statement
on these rows outside the reads lives here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class BlockEntry:
    byte_offset: int  # absolute, in the object
    byte_length: int
    row_count: int
    min_time: int
    max_time: int
    # Parquet row groups: the first row's number within the file.
    first_row: int | None = None
    # Avro blocks: their columns' statistics as JSON (``fusou.records.column_stats``).
    column_stats: str | None = None


@dataclass(frozen=True)
class FileEntry:
    """One readable file of an object: an Avro container, a Parquet file or a raw fragment."""

    table_id: int
    file_format: str  # 'avro' | 'parquet'
    byte_offset: int
    byte_length: int
    row_count: int
    uncompressed_bytes: int
    min_time: int | None
    max_time: int | None
    schema_version: int | None
    codec: str | None
    header: bytes | None
    blocks: Sequence[BlockEntry]
    # Raw fragments: the seq of their first row, and when they arrived (epoch ms).
    first_seq: int | None = None
    ingested_at: int | None = None
    # The highest deletion the writer applied to the rows (compaction's outputs).
    deletions_applied: int = 0


async def register_object(
    conn: asyncpg.Connection, dataset_id: str, object_key: str, kind: str, size_bytes: int
) -> int:
    object_id: int = await conn.fetchval(
        "INSERT INTO fusou_objects (dataset_id, object_key, kind, size_bytes) "
        "VALUES ($1, $2, $3, $4) RETURNING object_id",
        dataset_id,
        object_key,
        kind,
        size_bytes,
    )
    return object_id


async def register_file_entry(conn: asyncpg.Connection, object_id: int, f: FileEntry) -> int:
    """Insert one file of a registered object and its blocks (inside the caller's transaction)."""
    file_id: int = await conn.fetchval(
        "INSERT INTO fusou_files (object_id, table_id, format, byte_offset, byte_length, "
        "row_count, uncompressed_bytes, min_time, max_time, schema_version, codec, header, "
        "first_seq, ingested_at, deletions_applied) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
        "RETURNING file_id",
        object_id,
        f.table_id,
        f.file_format,
        f.byte_offset,
        f.byte_length,
        f.row_count,
        f.uncompressed_bytes,
        f.min_time,
        f.max_time,
        f.schema_version,
        f.codec,
        f.header,
        f.first_seq,
        f.ingested_at,
        f.deletions_applied,
    )
    if f.blocks:
        await conn.execute(
            "INSERT INTO fusou_blocks (file_id, block_no, byte_offset, byte_length, row_count, "
            "min_time, max_time, first_row, column_stats) "
            "SELECT $1, n - 1, o, l, r, lo, hi, fr, cs FROM unnest($2::bigint[], $3::bigint[], "
            "$4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::jsonb[]) "
            "WITH ORDINALITY AS b(o, l, r, lo, hi, fr, cs, n)",
            file_id,
            [b.byte_offset for b in f.blocks],
            [b.byte_length for b in f.blocks],
            [b.row_count for b in f.blocks],
            [b.min_time for b in f.blocks],
            [b.max_time for b in f.blocks],
            [b.first_row for b in f.blocks],
            [b.column_stats for b in f.blocks],
        )
    return file_id


async def register_file(
    conn: asyncpg.Connection, dataset_id: str, object_key: str, kind: str, f: FileEntry
) -> int:
    """Insert an object holding the one file ``f`` (the whole object), the file and its
    blocks, inside the caller's transaction."""
    object_id = await register_object(conn, dataset_id, object_key, kind, f.byte_length)
    return await register_file_entry(conn, object_id, f)


async def unregistered(conn: asyncpg.Connection, keys: Sequence[str]) -> list[str]:
    """Those of ``keys`` (in order) that no catalog object names: orphans, once old enough."""
    known = {
        r["object_key"]
        for r in await conn.fetch(
            "SELECT object_key FROM fusou_objects WHERE object_key = ANY($1::text[])", keys
        )
    }
    return [k for k in keys if k not in known]


async def retire_files(
    conn: asyncpg.Connection, object_ids: Sequence[int], file_ids: Sequence[int]
) -> int:
    """Retire the files (of the objects ``object_ids``) that are still active, and each object
    none of whose files is then active, inside the caller's transaction; returns how many of
    the files it retired. Fewer than ``len(file_ids)`` means another run replaced some
    meanwhile: the objects are left as they were, and the caller must roll back."""
    ordered = sorted(set(object_ids))
    # Lock the objects first: two runs retiring files of one raw bundle (one of them past its
    # claim) must see each other's retirements, or neither retires the bundle.
    await conn.execute(
        "SELECT 1 FROM fusou_objects WHERE object_id = ANY($1::bigint[]) "
        "ORDER BY object_id FOR UPDATE",
        ordered,
    )
    retired = await conn.fetch(
        "UPDATE fusou_files SET state = 'retired', retired_at = now() "
        "WHERE file_id = ANY($1::bigint[]) AND state = 'active' RETURNING file_id",
        list(file_ids),
    )
    if len(retired) != len(file_ids):
        return len(retired)
    # An object goes once none of its files is active (a raw bundle holds several).
    await conn.execute(
        "UPDATE fusou_objects o SET state = 'retired', retired_at = now() "
        "WHERE o.object_id = ANY($1::bigint[]) AND o.state = 'active' "
        "AND NOT EXISTS (SELECT 1 FROM fusou_files f "
        "                WHERE f.object_id = o.object_id AND f.state = 'active')",
        ordered,
    )
    return len(retired)


async def retired_objects(
    conn: asyncpg.Connection, dataset_id: str, grace_s: float
) -> list[tuple[int, str]]:
    """The (object id, key) of the dataset's objects retired longer than ``grace_s`` ago."""
    rows = await conn.fetch(
        "SELECT object_id, object_key FROM fusou_objects "
        "WHERE dataset_id = $1 AND state = 'retired' "
        "AND retired_at < now() - make_interval(secs => $2)",
        dataset_id,
        grace_s,
    )
    return [(r["object_id"], r["object_key"]) for r in rows]


async def forget_objects(conn: asyncpg.Connection, object_ids: Sequence[int]) -> None:
    """Delete the rows of these objects, their files and blocks (their bytes are gone)."""
    ids = list(object_ids)
    async with conn.transaction():
        await conn.execute(
            "DELETE FROM fusou_blocks WHERE file_id IN "
            "(SELECT file_id FROM fusou_files WHERE object_id = ANY($1::bigint[]))",
            ids,
        )
        await conn.execute("DELETE FROM fusou_files WHERE object_id = ANY($1::bigint[])", ids)
        await conn.execute("DELETE FROM fusou_objects WHERE object_id = ANY($1::bigint[])", ids)
