"""Shared helpers of the ingest tests: building requests, reading the buffer back."""

from __future__ import annotations

import io
import json
from typing import Any

import asyncpg
import fastavro
import grpc
from google.rpc import status_pb2

from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.structs import structs
from fusou.server.status import bad_request_fields


def request(
    dataset: str, table: str, rows: list[dict[str, Any]], request_id: str = ""
) -> ingest_pb2.IngestRequest:
    return ingest_pb2.IngestRequest(
        dataset_id=dataset, table=table, request_id=request_id, rows=structs(rows)
    )


def violation_fields(err: grpc.aio.AioRpcError) -> list[str]:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            return bad_request_fields(status_pb2.Status.FromString(value))
    return []


async def snapshot(url: str) -> dict[str, Any]:
    """Everything ingest may write, to compare before and after a rejected request."""
    conn = await asyncpg.connect(url)
    try:
        return {
            table: [tuple(r) for r in await conn.fetch(f"SELECT * FROM {table} ORDER BY 1")]
            for table in (
                "fusou_datasets",
                "fusou_tables",
                "fusou_table_schemas",
                "fusou_ingest_requests",
                "fusou_buffer",
            )
        } | {"seq": await conn.fetchval("SELECT last_value FROM fusou_ingest_seq")}
    finally:
        await conn.close()


async def buffer_rows(url: str, dataset: str, table: str) -> list[dict[str, Any]]:
    """The buffer's rows of a table, records decoded with their schema version."""
    conn = await asyncpg.connect(url)
    try:
        schemas = {
            (r["table_id"], r["version"]): fastavro.parse_schema(json.loads(r["avro_schema"]))
            for r in await conn.fetch(
                "SELECT table_id, version, avro_schema FROM fusou_table_schemas"
            )
        }
        rows = await conn.fetch(
            "SELECT b.* FROM fusou_buffer b JOIN fusou_tables t USING (table_id) "
            "WHERE t.dataset_id = $1 AND t.table_name = $2 ORDER BY seq",
            dataset,
            table,
        )
        out = []
        for r in rows:
            record = fastavro.schemaless_reader(
                io.BytesIO(r["record"]), schemas[(r["table_id"], r["schema_version"])], None
            )
            out.append({**dict(r), "decoded": record})
        return out
    finally:
        await conn.close()
