"""Turning fetched buffer rows into framed Avro blocks (CPU work, run off the event loop)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from fusou.formats.avro_container import encode_block
from fusou.records.segments import join_rows, varints, zigzag


@dataclass(frozen=True)
class Block:
    data: bytes  # framed: count, size, compressed datums, sync
    row_count: int
    uncompressed_bytes: int
    min_time: int
    max_time: int
    seqs: npt.NDArray[np.int64]


def build_blocks(
    rows: Sequence[tuple[int, int, int, bytes]],
    *,
    codec: str,
    sync: bytes,
    max_block_bytes: int,
) -> list[Block]:
    """Frame ``rows`` of (seq, event_time, ingested_at, datum) as one or more blocks.

    Each cold datum is the stored datum with the seq and the ingest time appended as varints
    (the two metadata fields close the writer schema), so no record is decoded.
    """
    n = len(rows)
    if n == 0:
        return []
    seqs = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    times = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
    ingested = np.fromiter((r[2] for r in rows), dtype=np.int64, count=n)
    records = pa.array([r[3] for r in rows], pa.binary())
    joined = join_rows([records, varints(zigzag(seqs)), varints(zigzag(ingested))], n)
    blocks: list[Block] = []
    start = 0
    offsets = joined.offsets
    while start < n:
        # The longest run of rows from ``start`` within the byte bound, at least one row.
        limit = offsets[start] + max_block_bytes
        end = int(np.searchsorted(offsets, limit, side="right")) - 1
        end = min(max(end, start + 1), n)
        body = joined.data[offsets[start] : offsets[end]].tobytes()
        part = times[start:end]
        blocks.append(
            Block(
                data=encode_block(end - start, body, codec, sync),
                row_count=end - start,
                uncompressed_bytes=len(body),
                min_time=int(part.min()),
                max_time=int(part.max()),
                seqs=seqs[start:end],
            )
        )
        start = end
    return blocks
