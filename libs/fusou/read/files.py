"""Files and blocks as a read (or a compaction) plans them, and decoding one file's blocks.

Reads and compaction decode every stored form (Avro blocks, Parquet row groups of compacted
files and of raw fragments) through this one function, conformed to the table's latest schema,
so a row reads the same whatever form it is stored in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from fusou.formats.parquet_file import row_group_at
from fusou.read.decode import RawRows, decode_blocks, parquet_rows, row_group_rows
from fusou.read.fetch import Span
from fusou.read.merge import conform_to
from fusou.schema.model import TableSchema


@dataclass(frozen=True)
class FileRef:
    file_id: int
    object_key: str
    header: bytes  # the Avro header, or the Parquet footer
    version: int
    parquet: bool
    offset: int  # where the file starts in its object
    length: int
    # Raw fragments: the seq of their first row and their arrival time.
    first_seq: int | None
    ingested_at: int | None


@dataclass(frozen=True)
class BlockRef:
    file: FileRef
    offset: int  # absolute, in the object
    length: int
    first_row: int | None
    # The time field's bounds within the block, from the block index (None: not planned).
    min_time: int | None = None
    max_time: int | None = None
    # Avro blocks: the statistics of the filtered columns from the block index, as JSON (only
    # filtered reads plan them).
    column_stats: str | None = None

    @property
    def span(self) -> Span:
        return Span(self.file.object_key, self.offset, self.length)


def decode_file_blocks(
    refs: list[BlockRef], blocks: list[bytes], latest: TableSchema
) -> list[pa.Table]:
    """Blocks of one file (``blocks[i]`` holds the bytes of ``refs[i]``), conformed to
    ``latest``, with their seq and ingest time."""
    f = refs[0].file
    if not f.parquet:
        return [conform_to(t, latest) for t in decode_blocks(f.header, blocks)]
    return [
        conform_to(
            row_group_rows(
                f.header,
                f.length,
                row_group_at(f.header, r.first_row or 0),
                r.offset - f.offset,
                data,
                latest.time_field,
                RawRows(f.first_seq, r.first_row or 0, f.ingested_at or 0)
                if f.first_seq is not None
                else None,
            ),
            latest,
        )
        for r, data in zip(refs, blocks, strict=True)
    ]


def whole_file_span(f: FileRef) -> Span:
    return Span(f.object_key, f.offset, f.length)


def decode_whole_parquet(f: FileRef, data: bytes, latest: TableSchema) -> pa.Table:
    """A whole Parquet file (its bytes, footer included), as ``decode_file_blocks`` would
    give its row groups, in one table: one read, without the per-block sparse files. String
    columns stay dictionary-encoded (for the compactor, which writes them so)."""
    raw = RawRows(f.first_seq, 0, f.ingested_at or 0) if f.first_seq is not None else None
    rows = parquet_rows(data, latest.time_field, raw, string_dictionaries=True)
    return conform_to(rows, latest)
