"""Choosing a table's compaction inputs within the guardrails, and reading them.

Inputs are the table's raw fragments, cold Avro files and optimized files below the target
size, oldest data first, up to FUSOU_COMPACT_MAX_FRAGMENTS files and FUSOU_COMPACT_MAX_BYTES.
Bytes are counted decoded (what the rows take in memory as Arrow, or the stored datums for
cold files), because that is what a run holds: the guardrail bounds its memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from fusou.db.status import rows_affected
from fusou.read.deletions import DELETIONS_JSON, Deletion, deletions_of
from fusou.read.files import BlockRef, FileRef

# Deletion d waits for file f: it reaches f's time range, and f was not written under it.
_WAITS = (
    "d.table_id = f.table_id AND d.deletion_id > f.deletions_applied "
    "AND d.start_time <= f.max_time AND d.end_time > f.min_time"
)

_CANDIDATES = """
SELECT * FROM (
  SELECT f.file_id, f.object_id, o.object_key, o.kind, f.format = 'parquet' AS parquet,
         f.byte_offset, f.byte_length, f.row_count, f.uncompressed_bytes, f.header,
         f.schema_version, f.first_seq, f.ingested_at, f.min_time, f.max_time,
         array_agg(b.byte_offset ORDER BY b.block_no) AS block_offsets,
         array_agg(b.byte_length ORDER BY b.block_no) AS block_lengths,
         array_agg(b.first_row ORDER BY b.block_no) AS block_first_rows,
         -- A deletion reaches the file and it was not written under it: rewriting the file
         -- makes the deletion physical.
         EXISTS (SELECT 1 FROM fusou_deletions d WHERE {waits}) AS deleting
  FROM fusou_files f
  JOIN fusou_objects o USING (object_id)
  JOIN fusou_blocks b USING (file_id)
  WHERE f.table_id = $1 AND f.state = 'active'
  GROUP BY f.file_id, o.object_key, o.kind
) c
WHERE c.kind IN ('raw', 'cold') OR c.byte_length < $2 OR c.deleting
ORDER BY c.min_time, c.file_id
""".replace("{waits}", _WAITS)


@dataclass(frozen=True)
class InputFile:
    ref: FileRef
    object_id: int
    kind: str
    rows: int
    decoded_bytes: int
    min_time: int
    max_time: int
    blocks: tuple[BlockRef, ...]
    # A deletion waits for this file to be rewritten.
    deleting: bool = False

    @property
    def cost(self) -> int:
        return max(self.decoded_bytes, self.ref.length)


async def candidates(
    conn: asyncpg.Connection, table_id: int, target_file_bytes: int
) -> list[InputFile]:
    out: list[InputFile] = []
    for r in await conn.fetch(_CANDIDATES, table_id, target_file_bytes):
        ref = FileRef(
            r["file_id"],
            r["object_key"],
            bytes(r["header"]),
            r["schema_version"],
            r["parquet"],
            r["byte_offset"],
            r["byte_length"],
            r["first_seq"],
            r["ingested_at"],
        )
        blocks = tuple(
            BlockRef(ref, offset, length, first_row)
            for offset, length, first_row in zip(
                r["block_offsets"],
                r["block_lengths"],
                r["block_first_rows"],
                strict=True,
            )
        )
        out.append(
            InputFile(
                ref,
                r["object_id"],
                r["kind"],
                r["row_count"],
                r["uncompressed_bytes"],
                r["min_time"],
                r["max_time"],
                blocks,
                r["deleting"],
            )
        )
    return out


@dataclass(frozen=True)
class Selection:
    inputs: list[InputFile]
    more_remaining: bool


def select(found: Sequence[InputFile], max_files: int, max_bytes: int) -> Selection:
    """New data first (raw fragments, cold files and files a deletion waits for, oldest
    first): as many as the guardrails allow, and at least one, so that a file larger than the
    byte guardrail is not stuck for ever. Then small optimized files, only where they fit:
    they are compacted already, and forcing one in would rewrite it on every run (each run's
    output is itself a small optimized file) and break the memory bound. With no new data, optimized files are merged
    only when at least two fit together."""
    new = [f for f in found if f.kind != "optimized" or f.deleting]
    small = sorted(
        (f for f in found if f.kind == "optimized" and not f.deleting), key=lambda f: f.cost
    )
    chosen: list[InputFile] = []
    total = 0
    for f in new:
        if len(chosen) >= max_files or (chosen and total + f.cost > max_bytes):
            break
        chosen.append(f)
        total += f.cost
    more = len(chosen) < len(new)
    merged_small = 0
    for f in small:
        if len(chosen) >= max_files or total + f.cost > max_bytes:
            break
        chosen.append(f)
        total += f.cost
        merged_small += 1
    if not new and merged_small < 2:
        return Selection([], False)
    # Optimized files left over could still pair up in a later run only if the run was full.
    more = more or (merged_small < len(small) and len(chosen) >= max_files)
    return Selection(chosen, more)


def in_time_order(inputs: Sequence[InputFile]) -> list[InputFile] | None:
    """The inputs ordered by time when their time ranges do not overlap (then the output is
    each input sorted on its own, one after the other), else None."""
    ordered = sorted(inputs, key=lambda f: (f.min_time, f.max_time))
    for a, b in itertools.pairwise(ordered):
        if a.max_time >= b.min_time:
            return None
    return ordered


async def table_deletions(conn: asyncpg.Connection, table_id: int) -> list[Deletion]:
    """Every deletion of the table: a run applies them all to what it rewrites."""
    raw = await conn.fetchval("SELECT " + DELETIONS_JSON, table_id, None, None)
    return deletions_of(raw)


async def retire_applied_deletions(conn: asyncpg.Connection, table_id: int) -> int:
    """Forget the table's deletions that no stored row can meet any more: every active file
    their range reaches was written under them, and no hot row they hide is left (rows
    ingested while one committed). Run under the table's compaction lock."""
    status = await conn.execute(
        "DELETE FROM fusou_deletions d WHERE d.table_id = $1 "
        f"AND NOT EXISTS (SELECT 1 FROM fusou_files f WHERE f.state = 'active' AND {_WAITS}) "
        "AND NOT EXISTS (SELECT 1 FROM fusou_buffer b WHERE b.table_id = d.table_id "
        "  AND b.seq <= d.max_seq AND b.event_time >= d.start_time "
        "  AND b.event_time < d.end_time)",
        table_id,
    )
    return rows_affected(status)
