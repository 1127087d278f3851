"""Raw bundles for the tests: Parquet fragments from rows, sent through UploadRaw, and what
the catalog and the object store hold afterwards."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq

from fusou.api.ingest.upload_requests import Part, upload_requests
from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from tests.read.oracle import Oracle


def parquet_bytes(rows: Sequence[Mapping[str, Any]] | pa.Table, row_group_size: int = 7) -> bytes:
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist([dict(r) for r in rows])
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=row_group_size, compression="zstd")
    return sink.getvalue()


async def first_seqs(url: str, object_key: str) -> list[int]:
    """The first seq of each fragment of a stored bundle, in bundle order."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT f.first_seq FROM fusou_files f JOIN fusou_objects o USING (object_id) "
            "WHERE o.object_key = $1 ORDER BY f.byte_offset",
            object_key,
        )
    finally:
        await conn.close()
    return [r["first_seq"] for r in rows]


async def upload(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub,
    url: str,
    dataset: str,
    fragments: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    oracles: Mapping[str, Oracle],
    *,
    request_id: str = "",
    chunk_bytes: int = 1000,
) -> ingest_pb2.UploadRawResponse:
    """Send (table, rows) fragments as one bundle and keep their rows in each table's oracle,
    with the seqs the catalog gave them."""
    parts = [Part(table, parquet_bytes(rows)) for table, rows in fragments]
    answer = await stub.UploadRaw(upload_requests(dataset, parts, request_id, chunk_bytes))
    if not answer.replayed:
        seqs = await first_seqs(url, answer.object_key)
        assert len(seqs) == len(fragments)
        for (table, rows), first in zip(fragments, seqs, strict=True):
            oracles[table].keep_rows(first, rows, arrow=True)
    return answer


async def catalog_counts(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            name: await conn.fetchval(f"SELECT count(*) FROM {name}")
            for name in ("fusou_objects", "fusou_files", "fusou_blocks", "fusou_upload_requests")
        }
    finally:
        await conn.close()


def stored_files(objects: Path) -> list[str]:
    """Every file under the local object store's root, temporary ones included."""
    return sorted(str(p.relative_to(objects)) for p in objects.rglob("*") if p.is_file())
