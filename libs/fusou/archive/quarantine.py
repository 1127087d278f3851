"""Setting aside buffer rows the archiver cannot place.

A row whose time is outside years 1 to 9999 (stored before ingest refused such times) has no
date folder, and Avro and Parquet readers cannot convert it: left in the buffer it would fail
every archive of its table. Before a table is archived, its rows out of bounds move, whole, from
the buffer to ``fusou_quarantine`` in one statement, so each row is in exactly one of the two.
No read can ask for such a time, so setting the rows aside changes no answer, the dedup rule's
included: it picks winners among the rows of a range.
"""

from __future__ import annotations

import asyncpg

from fusou.db.status import rows_affected
from fusou.schema.time_bounds import MAX_TIME_MS, MIN_TIME_MS, bounds_text

QUARANTINE_TABLE = "fusou_quarantine"

# One statement: the DELETE and the INSERT commit together. A row restored by an operator and
# quarantined again replaces its earlier copy.
_MOVE = """
WITH moved AS (
    DELETE FROM fusou_buffer
    WHERE table_id = $1 AND ingested_at < $2 AND (event_time < $3 OR event_time > $4)
    RETURNING table_id, seq, event_time, ingested_at, schema_version, dedup_key, record
)
INSERT INTO fusou_quarantine
    (table_id, seq, event_time, ingested_at, schema_version, dedup_key, record, reason)
SELECT table_id, seq, event_time, ingested_at, schema_version, dedup_key, record,
       CASE WHEN event_time < $3 THEN $5 ELSE $6 END
FROM moved
ON CONFLICT (table_id, seq) DO UPDATE SET
    event_time = EXCLUDED.event_time,
    ingested_at = EXCLUDED.ingested_at,
    schema_version = EXCLUDED.schema_version,
    dedup_key = EXCLUDED.dedup_key,
    record = EXCLUDED.record,
    reason = EXCLUDED.reason,
    quarantined_at = now()
"""

BEFORE_YEAR_1 = "event_time before 0001-01-01T00:00:00Z: no cold file can hold it"
AFTER_YEAR_9999 = "event_time after 9999-12-31T23:59:59.999Z: no cold file can hold it"


async def quarantine_unplaceable(conn: asyncpg.Connection, table_id: int, cutoff: int) -> int:
    """Move the table's rows ingested before ``cutoff`` whose time no cold file can hold from
    the buffer to the quarantine; how many moved."""
    status = await conn.execute(
        _MOVE, table_id, cutoff, MIN_TIME_MS, MAX_TIME_MS, BEFORE_YEAR_1, AFTER_YEAR_9999
    )
    return rows_affected(status)


def quarantine_message(rows: int) -> str:
    """The table's error for a run that quarantined ``rows`` rows."""
    noun = "row" if rows == 1 else "rows"
    return f"{rows} {noun} set aside in {QUARANTINE_TABLE} (event_time not {bounds_text()})"
