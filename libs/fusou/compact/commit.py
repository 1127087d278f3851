"""Compaction's commit: upload a table's compacted files, then in one transaction retire its
inputs (refusing when any was replaced meanwhile) and register the outputs. A crash before the
commit leaves unregistered outputs, deleted by the orphan sweep; after it, the retired inputs
are deleted once past the grace period (``fusou.compact.cleanup``)."""

from __future__ import annotations

import functools

import asyncpg

from fusou.catalog.files import FileEntry, register_file, retire_files
from fusou.catalog.tables import TableInfo
from fusou.compact.inputs import InputFile
from fusou.compact.output import CODEC, OutputFile
from fusou.errors import Aborted
from fusou.jobs import Checkpoint
from fusou.objectstore.base import ObjectStore
from fusou.objectstore.retry import with_retries
from fusou.storage.keys import optimized_key


async def upload_outputs(
    store: ObjectStore, info: TableInfo, outputs: list[OutputFile], checkpoint: Checkpoint
) -> list[str]:
    """Store the outputs under fresh keys (in order); the caller holds the table's lock."""
    keys = []
    for out in outputs:
        key = optimized_key(info.dataset_id, info.name)
        await with_retries(functools.partial(store.put, key, out.data), f"put {key}")
        keys.append(key)
        await checkpoint("upload")
    return keys


async def commit(
    pool: asyncpg.Pool,
    info: TableInfo,
    inputs: list[InputFile],
    outputs: list[OutputFile],
    keys: list[str],
    checkpoint: Checkpoint,
    deletions_applied: int = 0,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        retired = await retire_files(
            conn, [f.object_id for f in inputs], [f.ref.file_id for f in inputs]
        )
        if retired != len(inputs):
            raise Aborted(
                f"{len(inputs) - retired} input files of {info.dataset_id}/{info.name} "
                "were replaced meanwhile; retry"
            )
        for out, key in zip(outputs, keys, strict=True):
            await register_file(
                conn,
                info.dataset_id,
                key,
                "optimized",
                FileEntry(
                    table_id=info.table_id,
                    file_format="parquet",
                    byte_offset=0,
                    byte_length=len(out.data),
                    row_count=out.rows,
                    uncompressed_bytes=out.decoded_bytes,
                    min_time=out.min_time,
                    max_time=out.max_time,
                    schema_version=info.latest.version,
                    codec=CODEC,
                    header=out.footer,
                    blocks=out.blocks,
                    deletions_applied=deletions_applied,
                ),
            )
        await checkpoint("commit")
