"""Writing compacted rows as Parquet files (CPU work, run off the event loop).

Rows arrive deduplicated and sorted by (time, seq). They are cut into row groups of a fixed
row count, each later fetched by a reader with one ranged GET, and into files of about the
target size. The seq and ingest time stay as columns so the dedup rule keeps working on the
compacted rows.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fusou.catalog.files import BlockEntry
from fusou.formats.parquet_file import footer_of, metadata_of, row_group_spans

CODEC = "zstd"


@dataclass(frozen=True)
class OutputFile:
    data: bytes
    rows: int
    min_time: int
    max_time: int
    footer: bytes
    blocks: tuple[BlockEntry, ...]
    decoded_bytes: int


def _finish(sink: io.BytesIO, times: np.ndarray, decoded_bytes: int) -> OutputFile:
    data = sink.getvalue()
    footer = footer_of(data)
    blocks = tuple(
        BlockEntry(
            s.offset,
            s.length,
            s.rows,
            int(times[s.first_row]),
            int(times[s.first_row + s.rows - 1]),
            s.first_row,
        )
        for s in row_group_spans(metadata_of(footer))
    )
    return OutputFile(
        data, len(times), int(times[0]), int(times[-1]), footer, blocks, decoded_bytes
    )


def write_files(
    table: pa.Table, time_field: str, target_bytes: int, row_group_rows: int
) -> list[OutputFile]:
    """``table`` (sorted by time) as Parquet files of about ``target_bytes`` each."""
    times = table.column(time_field).to_numpy()
    files: list[OutputFile] = []
    n = table.num_rows
    start = 0
    while start < n:
        sink = io.BytesIO()
        first = start
        with pq.ParquetWriter(
            sink,
            table.schema,
            compression=CODEC,
            write_statistics=True,
            store_schema=False,
        ) as writer:
            while start < n:
                group = table.slice(start, row_group_rows)
                writer.write_table(group, row_group_size=row_group_rows)
                start += group.num_rows
                if sink.tell() >= target_bytes:
                    break
        decoded = int(table.slice(first, start - first).nbytes)
        files.append(_finish(sink, times[first:start], decoded))
    return files
