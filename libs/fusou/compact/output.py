"""Writing compacted rows as Parquet files (CPU work, run off the event loop).

Rows arrive deduplicated and in (time, seq) order, all at once or file by file. They are cut
into row groups of a fixed row count, each later fetched by a reader with one ranged GET, and
into files of about the target size. The seq and ingest time stay as columns so the dedup rule
keeps working on the compacted rows.

The writer is incremental: a run whose inputs do not overlap in time streams them through it
one by one, so it holds one decoded input at a time instead of all of them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from fusou.catalog.files import BlockEntry
from fusou.formats.parquet_file import footer_of, metadata_of, row_group_spans

CODEC = "zstd"
# zstd's fastest level: within a few percent of the default level's size on such rows.
ZSTD_LEVEL = 1


@dataclass(frozen=True)
class OutputFile:
    data: bytes
    rows: int
    min_time: int
    max_time: int
    footer: bytes
    blocks: tuple[BlockEntry, ...]
    decoded_bytes: int


def _dictionary_columns(schema: pa.Schema) -> list[str]:
    # Strings repeat (ship names, ranks): dictionaries pay. For integers see below.
    return [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_binary(f.type)]


def _delta_columns(schema: pa.Schema) -> dict[str, str]:
    # Times, seqs and counters as deltas: measured on a day of battle rows, a third less time
    # writing and a fifth smaller than dictionaries of mostly distinct values.
    return {f.name: "DELTA_BINARY_PACKED" for f in schema if pa.types.is_integer(f.type)}


class ParquetFilesWriter:
    """Rows in (time, seq) order in; Parquet files of about ``target_bytes`` out, in row
    groups of ``row_group_rows`` rows (the last one of the run may be shorter)."""

    def __init__(
        self, schema: pa.Schema, time_field: str, target_bytes: int, row_group_rows: int
    ) -> None:
        self._schema = schema
        self._time_field = time_field
        self._target_bytes = target_bytes
        self._group_rows = row_group_rows
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._sink: io.BytesIO | None = None
        self._writer: pq.ParquetWriter | None = None
        self._times: list[npt.NDArray[np.int64]] = []
        self._decoded = 0
        self.files: list[OutputFile] = []
        self.rows = 0

    def add(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        while self._pending_rows >= self._group_rows:
            self._write_group(self._group_rows)

    def finish(self) -> list[OutputFile]:
        if self._pending_rows:
            self._write_group(self._pending_rows)
        self._close_file()
        return self.files

    def _write_group(self, rows: int) -> None:
        pending = pa.concat_tables(self._pending)
        group, rest = pending.slice(0, rows), pending.slice(rows)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows
        if self._writer is None:
            self._sink = io.BytesIO()
            self._writer = pq.ParquetWriter(
                self._sink,
                self._schema,
                compression=CODEC,
                compression_level=ZSTD_LEVEL,
                use_dictionary=_dictionary_columns(self._schema),
                column_encoding=_delta_columns(self._schema),
                write_statistics=True,
                # Without the Arrow schema, strings read back as plain (not large) strings.
                store_schema=False,
            )
        self._writer.write_table(group, row_group_size=rows)
        self._times.append(np.asarray(group.column(self._time_field).to_numpy(), np.int64))
        self._decoded += group.nbytes
        assert self._sink is not None
        if self._sink.tell() >= self._target_bytes:
            self._close_file()

    def _close_file(self) -> None:
        if self._writer is None or self._sink is None:
            return
        self._writer.close()
        data = self._sink.getvalue()
        times = np.concatenate(self._times)
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
        self.files.append(
            OutputFile(
                data, len(times), int(times[0]), int(times[-1]), footer, blocks, self._decoded
            )
        )
        self._writer = None
        self._sink = None
        self._times = []
        self._decoded = 0
