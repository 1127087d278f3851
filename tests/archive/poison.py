"""Rows that an older version of ingest let in, written below today's door.

Ingest now refuses times outside years 1 to 9999, so a test that needs such a row in the
buffer makes it the way an older version would have stored it: a valid row is ingested, then
its record (the Avro datum, re-encoded with the time changed) and its ``event_time`` column are
rewritten in SQL.
"""

from __future__ import annotations

import io
import json
from typing import Any

import asyncpg
import fastavro

from tests.read.oracle import Oracle, Row

# Year -29719: what the tester sent; Python's datetime cannot hold it.
LONG_AGO_MS = -1_000_000_000_000_000
BUFFER_COLUMNS = (
    "table_id",
    "seq",
    "event_time",
    "ingested_at",
    "schema_version",
    "dedup_key",
    "record",
)


async def poison_row(url: str, dataset: str, table: str, seq: int, time_ms: int) -> dict[str, Any]:
    """Give the buffer row ``seq`` of ``dataset/table`` the time ``time_ms``, in its record and
    in its ``event_time``; the row as it then is, column by column."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT b.*, t.time_field, s.avro_schema FROM fusou_buffer b "
            "JOIN fusou_tables t USING (table_id) "
            "JOIN fusou_table_schemas s ON s.table_id = b.table_id "
            "  AND s.version = b.schema_version "
            "WHERE t.dataset_id = $1 AND t.table_name = $2 AND b.seq = $3",
            dataset,
            table,
            seq,
        )
        assert row is not None, f"no buffer row {seq} in {dataset}/{table}"
        schema = fastavro.parse_schema(json.loads(row["avro_schema"]))
        record = fastavro.schemaless_reader(io.BytesIO(row["record"]), schema, None)
        assert isinstance(record, dict)
        record[row["time_field"]] = time_ms
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, record)
        await conn.execute(
            "UPDATE fusou_buffer SET event_time = $3, record = $4 WHERE table_id = $1 AND seq = $2",
            row["table_id"],
            seq,
            time_ms,
            out.getvalue(),
        )
        changed = await conn.fetchrow(
            f"SELECT {', '.join(BUFFER_COLUMNS)} FROM fusou_buffer "
            "WHERE table_id = $1 AND seq = $2",
            row["table_id"],
            seq,
        )
        assert changed is not None
        return dict(changed)
    finally:
        await conn.close()


def poison_in_oracle(oracle: Oracle, seq: int, time_ms: int) -> None:
    """The oracle's copy of the same change: the row's time is now ``time_ms``."""
    for n, row in enumerate(oracle.rows):
        if row.seq == seq:
            oracle.rows[n] = Row(seq, {**row.record, oracle.time_field: time_ms})
            return
    raise AssertionError(f"the oracle has no row {seq}")


async def quarantined(url: str) -> list[dict[str, Any]]:
    """Every quarantined row, with its dataset and table."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT q.*, t.dataset_id, t.table_name FROM fusou_quarantine q "
            "JOIN fusou_tables t USING (table_id) ORDER BY q.seq"
        )
        return [dict(r) for r in rows]
    finally:
        await conn.close()
