"""Registering object-store files and their block index in the catalog."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class BlockEntry:
    byte_offset: int
    byte_length: int
    row_count: int
    min_time: int
    max_time: int


@dataclass(frozen=True)
class NewFile:
    dataset_id: str
    table_id: int
    object_key: str
    kind: str  # 'raw' | 'cold' | 'optimized'
    file_format: str  # 'avro' | 'parquet'
    size_bytes: int
    row_count: int
    uncompressed_bytes: int
    min_time: int | None
    max_time: int | None
    schema_version: int | None
    codec: str | None
    header: bytes | None
    blocks: Sequence[BlockEntry]


async def register_file(conn: asyncpg.Connection, f: NewFile) -> int:
    """Insert the object, its file and its blocks (inside the caller's transaction)."""
    object_id = await conn.fetchval(
        "INSERT INTO fusou_objects (dataset_id, object_key, kind, size_bytes) "
        "VALUES ($1, $2, $3, $4) RETURNING object_id",
        f.dataset_id,
        f.object_key,
        f.kind,
        f.size_bytes,
    )
    file_id: int = await conn.fetchval(
        "INSERT INTO fusou_files (object_id, table_id, format, byte_offset, byte_length, "
        "row_count, uncompressed_bytes, min_time, max_time, schema_version, codec, header) "
        "VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING file_id",
        object_id,
        f.table_id,
        f.file_format,
        f.size_bytes,
        f.row_count,
        f.uncompressed_bytes,
        f.min_time,
        f.max_time,
        f.schema_version,
        f.codec,
        f.header,
    )
    if f.blocks:
        await conn.execute(
            "INSERT INTO fusou_blocks (file_id, block_no, byte_offset, byte_length, row_count, "
            "min_time, max_time) "
            "SELECT $1, n - 1, o, l, r, lo, hi FROM unnest($2::bigint[], $3::bigint[], "
            "$4::bigint[], $5::bigint[], $6::bigint[]) WITH ORDINALITY AS b(o, l, r, lo, hi, n)",
            file_id,
            [b.byte_offset for b in f.blocks],
            [b.byte_length for b in f.blocks],
            [b.row_count for b in f.blocks],
            [b.min_time for b in f.blocks],
            [b.max_time for b in f.blocks],
        )
    return file_id
