"""Writing compacted rows as Parquet files (CPU work, run off the event loop).

Rows arrive deduplicated and in (time, seq) order, all at once or file by file. They are cut
into row groups of a fixed row count, each later fetched by a reader with one ranged GET, and
into files of about the target size. The seq and ingest time stay as columns so the dedup rule
keeps working on the compacted rows.

The writer is incremental: a run whose inputs do not overlap in time streams them through it
one by one, so it holds one decoded input at a time instead of all of them.

Strings read from Parquet inputs arrive dictionary-encoded. Each row group's chunks get one
shared dictionary and are written through it, so the writer neither materializes nor hashes
their values; a file whose strings arrive plain (from Avro) is written from plain strings.

The files describe themselves to other engines (``fusou.formats.parquet_file``): the time is
stored as a UTC millisecond timestamp, the footer carries the table's description, and every
row group declares its (time, seq) order, which the writer checks rather than trusts: an
engine that believes a false order returns wrong answers.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from fusou.catalog.files import BlockEntry
from fusou.formats.file_metadata import FileDescription
from fusou.formats.parquet_file import (
    footer_of,
    metadata_of,
    row_group_spans,
    stored_times,
)
from fusou.records.order import in_time_seq_order
from fusou.records.string_dictionaries import (
    STRING_DICTIONARY,
    plain_strings,
    shared_dictionary,
)

CODEC = "zstd"
# zstd's fastest level: within a few percent of the default level's size on such rows.
ZSTD_LEVEL = 1
# pyarrow's dictionary page size limit: a writer handed a larger dictionary writes it anyway and
# then falls back to plain encoding, storing the values twice.
DICTIONARY_LIMIT_BYTES = 1024 * 1024
# Row groups prepared ahead of the encoder (each a few MB).
ENCODE_AHEAD = 2


@dataclass(frozen=True)
class OutputFile:
    data: memoryview  # over the writer's Arrow buffer, read-only: not copied again here
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


@dataclass(frozen=True)
class _Group:
    """One row group, ready to encode."""

    table: pa.Table  # as stored: the time a timestamp
    times: npt.NDArray[np.int64]
    decoded_bytes: int


def _statistics_columns(schema: pa.Schema) -> list[str]:
    # Min/max of strings and bytes in time-ordered files almost never prune a row group (a group
    # of a few thousand rows spans most of any unsorted column's values), and cost a fifth of
    # encoding battle rows; the time, seqs, numbers and booleans keep theirs.
    skipped = set(_dictionary_columns(schema))
    return [f.name for f in schema if f.name not in skipped]


class OutOfOrder(ValueError):
    """Rows reached the writer out of (time, seq) order, the order its files declare."""


class ParquetFilesWriter:
    """Rows in (time, seq) order in (the time as int64 epoch milliseconds); Parquet files of
    about ``target_bytes`` out, in row groups of ``row_group_rows`` rows (the last one of the
    run may be shorter), described by ``description``.

    Row groups are cut and their strings prepared on the calling thread; with an ``encoder``
    (a one-thread executor) they are encoded there, so that the Python work of preparing the
    next group overlaps the encoding of the last, up to ``ENCODE_AHEAD`` groups ahead.
    """

    def __init__(
        self,
        schema: pa.Schema,
        description: FileDescription,
        target_bytes: int,
        row_group_rows: int,
        encoder: Executor | None = None,
    ) -> None:
        for name in (description.time_field, description.seq_field):
            if schema.get_field_index(name) < 0:
                raise ValueError(f"the rows to write have no column {name!r}")
        self._schema = schema
        self._description = description
        self._time_field = description.time_field
        self._seq_field = description.seq_field
        # The (time, seq) of the last row cut into a group: the next group must follow it.
        self._last: tuple[int, int] | None = None
        self._target_bytes = target_bytes
        self._group_rows = row_group_rows
        self._encoder = encoder
        # Strings, not bytes: only they may arrive dictionary-encoded.
        self._strings = frozenset(f.name for f in schema if f.type == pa.string())
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        # The string columns that groups carry as shared dictionaries, until one is too large.
        self._dictionaries: frozenset[str] | None = None
        self._encoding: deque[Future[None]] = deque()
        # The encoding side: the open file, its schema, and what its row groups held.
        self._sink: pa.BufferOutputStream | None = None
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
            self._submit(self._next_group(self._group_rows))

    def finish(self) -> list[OutputFile]:
        if self._pending_rows:
            self._submit(self._next_group(self._pending_rows))
        while self._encoding:
            self._encoding.popleft().result()
        self._close_file()
        return self.files

    # -- the calling thread: cutting and preparing row groups ----------------------------------

    def _take(self, rows: int) -> list[pa.Table]:
        """The next ``rows`` pending rows, as slices of the tables added."""
        taken: list[pa.Table] = []
        while rows:
            head = self._pending[0]
            if head.num_rows <= rows:
                taken.append(self._pending.pop(0))
            else:
                taken.append(head.slice(0, rows))
                self._pending[0] = head.slice(rows)
            rows -= taken[-1].num_rows
        self._pending_rows -= sum(t.num_rows for t in taken)
        return taken

    def _group_table(
        self, parts: list[pa.Table], dictionaries: frozenset[str]
    ) -> tuple[pa.Table, int, frozenset[str]]:
        """The parts as one table, the string columns in ``dictionaries`` sharing one dictionary
        each and the other strings plain; its size as plain columns; and the columns whose
        dictionary is over the limit."""
        columns: list[pa.ChunkedArray] = []
        plain_bytes = 0
        too_large: set[str] = set()
        for name in self._schema.names:
            column = _column(parts, name)
            if name in dictionaries:
                shared = shared_dictionary(column)
                column = shared.column
                plain_bytes += shared.plain_bytes
                if column.chunk(0).dictionary.nbytes > DICTIONARY_LIMIT_BYTES:
                    too_large.add(name)
                columns.append(column)
                continue
            if name in self._strings:
                column = plain_strings(column)
            plain_bytes += column.nbytes
            columns.append(column)
        table = pa.Table.from_arrays(columns, names=self._schema.names)
        return table, plain_bytes, frozenset(too_large)

    def _next_group(self, rows: int) -> _Group:
        parts = self._take(rows)
        if self._dictionaries is None:
            # Dictionaries for the strings that arrive as dictionaries (from Parquet inputs).
            self._dictionaries = frozenset(
                name
                for name in self._strings
                if all(p.column(name).type == STRING_DICTIONARY for p in parts)
            )
        table, plain_bytes, too_large = self._group_table(parts, self._dictionaries)
        if too_large:
            # Those columns go plain from here on; the schema changes, so a new file starts.
            self._dictionaries -= too_large
            table, plain_bytes, _ = self._group_table(parts, self._dictionaries)
        times = np.asarray(table.column(self._time_field).to_numpy(), np.int64)
        self._check_order(times, np.asarray(table.column(self._seq_field).to_numpy(), np.int64))
        i = table.schema.get_field_index(self._time_field)
        stored = stored_times(table.column(i))
        table = table.set_column(i, pa.field(self._time_field, stored.type), stored)
        return _Group(table, times, plain_bytes)

    def _check_order(self, times: npt.NDArray[np.int64], seqs: npt.NDArray[np.int64]) -> None:
        """Refuse rows out of (time, seq) order, within this group and after the last one."""
        if self._last is not None:
            times = np.concatenate(([self._last[0]], times))
            seqs = np.concatenate(([self._last[1]], seqs))
        if not in_time_seq_order(times, seqs, strict_seqs=False):
            raise OutOfOrder(
                f"rows to write are not in ({self._time_field}, {self._seq_field}) order"
            )
        self._last = (int(times[-1]), int(seqs[-1]))

    def _submit(self, group: _Group) -> None:
        if self._encoder is None:
            self._encode(group)
            return
        self._encoding.append(self._encoder.submit(self._encode, group))
        while len(self._encoding) > ENCODE_AHEAD:
            self._encoding.popleft().result()

    # -- the encoding side ---------------------------------------------------------------------

    def _encode(self, group: _Group) -> None:
        table = group.table
        if self._writer is not None and not table.schema.equals(self._writer.schema):
            self._close_file()
        if self._writer is None:
            # An Arrow stream, not a Python file: writing to one takes the GIL for every
            # page, and waits behind any thread running Python (measured: 2-25x slower).
            self._sink = pa.BufferOutputStream()
            self._writer = pq.ParquetWriter(
                self._sink,
                table.schema,
                compression=CODEC,
                compression_level=ZSTD_LEVEL,
                use_dictionary=_dictionary_columns(self._schema),
                column_encoding=_delta_columns(self._schema),
                write_statistics=_statistics_columns(self._schema),
                # Without the Arrow schema, strings read back as plain (not large) strings,
                # and dictionary-encoded ones as plain too.
                store_schema=False,
                sorting_columns=[
                    pq.SortingColumn(table.schema.get_field_index(self._time_field)),
                    pq.SortingColumn(table.schema.get_field_index(self._seq_field)),
                ],
            )
            # Not the schema's metadata: without store_schema, pyarrow leaves that out.
            self._writer.add_key_value_metadata(self._description.key_value_metadata())
        assert self._sink is not None
        self._writer.write_table(table, row_group_size=table.num_rows)
        self._times.append(group.times)
        self._decoded += group.decoded_bytes
        if self._sink.tell() >= self._target_bytes:
            self._close_file()

    def _close_file(self) -> None:
        if self._writer is None or self._sink is None:
            return
        self._writer.close()
        data = memoryview(self._sink.getvalue()).cast("B").toreadonly()
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


def _column(parts: list[pa.Table], name: str) -> pa.ChunkedArray:
    """Column ``name`` of the parts (which hold rows, so it has chunks), of one type."""
    chunks = [c for p in parts for c in p.column(name).chunks]
    if len({c.type for c in chunks}) > 1:
        # Parquet inputs give dictionary strings, Avro ones plain strings: a group may hold both.
        chunks = [c.dictionary_decode() if c.type == STRING_DICTIONARY else c for c in chunks]
    return pa.chunked_array(chunks)
