"""Turning fetched buffer rows into framed Avro blocks (CPU work, run off the event loop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fusou.cpu import CODEC_THREADS
from fusou.formats.avro_container import cold_datums, compress, zigzag_varint
from fusou.read.decode import decode_hot_rows
from fusou.records.column_stats import block_stats
from fusou.schema.model import TableSchema


@dataclass(frozen=True)
class Block:
    data: bytes  # framed: count, size, compressed datums, sync
    row_count: int
    uncompressed_bytes: int
    min_time: int
    max_time: int
    seqs: npt.NDArray[np.int64]
    column_stats: str | None = None


def build_blocks(
    rows: Sequence[Any],
    *,
    codec: str,
    sync: bytes,
    max_block_bytes: int,
    max_block_rows: int,
    schema: TableSchema | None = None,
) -> list[Block]:
    """Frame ``rows`` of (seq, event_time, ingested_at, datum) as blocks.

    Each cold datum is the stored datum with the seq and the ingest time appended as varints
    (the two metadata fields close the writer schema), so framing decodes no record. Given the
    rows' ``schema``, each block's rows are decoded once more for its column statistics.
    """
    n = len(rows)
    if n == 0:
        return []
    seqs = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    times = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
    ingested = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
    joined = cold_datums(pa.array([r[3] for r in rows], pa.binary()), seqs, ingested)
    offsets = joined.offsets
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < n:
        # The longest run of rows from ``start`` within both bounds, at least one row.
        limit = offsets[start] + max_block_bytes
        end = int(np.searchsorted(offsets, limit, side="right")) - 1
        end = min(max(end, start + 1), n, start + max_block_rows)
        bounds.append((start, end))
        start = end
    bodies = [joined.data[offsets[a] : offsets[b]].tobytes() for a, b in bounds]
    compressed = list(CODEC_THREADS.map(lambda body: compress(codec, body), bodies))
    stats: list[str | None] = [None] * len(bounds)
    if schema is not None:
        stats = [
            block_stats(
                decode_hot_rows(
                    schema,
                    memoryview(b"".join(r[3] for r in rows[a:b])),
                    b - a,
                    seqs[a:b],
                    ingested[a:b],
                ),
                schema,
            )
            for a, b in bounds
        ]
    blocks = []
    for (a, b), body, packed, column_stats in zip(bounds, bodies, compressed, stats, strict=True):
        part = times[a:b]
        blocks.append(
            Block(
                data=zigzag_varint(b - a) + zigzag_varint(len(packed)) + packed + sync,
                row_count=b - a,
                uncompressed_bytes=len(body),
                min_time=int(part.min()),
                max_time=int(part.max()),
                seqs=seqs[a:b],
                column_stats=column_stats,
            )
        )
    return blocks
