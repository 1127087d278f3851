"""The bounds every incoming row must keep, and their cheap checks.

Each bound protects something downstream: the time range is what Avro and Parquet timestamps
and the cold layout's date folders hold; fields per row and per table bound the schema (whose
size every encoder, reader and catalog row pays for); nesting depth bounds the recursion of JSON
conversion (and protobuf's own limit when rows are read back); bytes per row bound what one row
costs in memory and in an Avro block.

The checks are meant to run before the expensive work and stay cheap on the common case: schema
level (columns, nested types) before any value is read, and per-row bounds vectorized over Arrow
columns. They are plain data and pure functions, so they cross into the ingest worker process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fusou.errors import InvalidArgument
from fusou.records.columns import holds_bytes
from fusou.schema.time_bounds import MAX_TIME_MS, MIN_TIME_MS

if TYPE_CHECKING:
    from fusou.config import Settings


@dataclass(frozen=True)
class RowLimits:
    """What one row may hold; the defaults are those of the configuration."""

    max_fields: int = 1000
    max_depth: int = 16
    max_row_bytes: int = 1024 * 1024
    min_time_ms: int = MIN_TIME_MS
    max_time_ms: int = MAX_TIME_MS

    @classmethod
    def of(cls, settings: Settings) -> RowLimits:
        return cls(
            max_fields=settings.rows.max_fields,
            max_depth=settings.rows.max_nesting_depth,
            max_row_bytes=settings.rows.max_row_bytes,
            min_time_ms=settings.rows.min_time_ms,
            max_time_ms=settings.rows.max_time_ms,
        )

    # -- messages, shared by every input form ----------------------------------------------------

    def too_many_fields(self, count: int) -> str:
        return f"has {count} fields, over the limit of {self.max_fields} (FUSOU_MAX_FIELDS)"

    def too_deep(self, depth: int | None = None) -> str:
        """``depth`` when known; a value's recursion stops one level past the limit."""
        if depth is None:
            return (
                f"nests objects or lists more than {self.max_depth} levels deep, over the "
                "limit (FUSOU_MAX_NESTING_DEPTH)"
            )
        return (
            f"nests objects or lists {depth} levels deep, over the limit of {self.max_depth} "
            "(FUSOU_MAX_NESTING_DEPTH)"
        )

    def too_large(self, size: int) -> str:
        return (
            f"is {size} bytes, over the limit of {self.max_row_bytes} bytes per row "
            "(FUSOU_MAX_ROW_BYTES)"
        )

    def time_outside(self, value: float) -> str:
        # Whole numbers as integers; doubles past 64 bits as doubles (1e+300, not 300 digits).
        shown = int(value) if float(value).is_integer() and abs(value) < 2**63 else value
        return (
            f"is {shown}, outside the accepted times: between {self.min_time_ms} and "
            f"{self.max_time_ms} epoch milliseconds ({_bounds_origin(self)})"
        )


def _bounds_origin(limits: RowLimits) -> str:
    if limits.min_time_ms == MIN_TIME_MS and limits.max_time_ms == MAX_TIME_MS:
        return "years 1 to 9999, what the storage formats hold"
    return "FUSOU_MIN_TIME_MS and FUSOU_MAX_TIME_MS"


@dataclass(frozen=True)
class RowNames:
    """How errors name row ``i`` of an input: ``rows[i]`` for Struct rows, whose rows are
    fields of the request; the input itself (``arrow_ipc``, ``fragments[2]``), with the row in
    the description, for a table of columns."""

    prefix: str
    indexed: bool

    def name(self, i: int, column: str | None = None) -> tuple[str, str]:
        """(field, description prefix) of row ``i`` (and one of its columns)."""
        if self.indexed:
            row = f"{self.prefix}[{i}]"
            return (f"{row}.{column}" if column else row), ""
        return (f"{self.prefix}.{column}" if column else self.prefix), f"row {i} "


# -- schema level: before any value is read -------------------------------------------------------


def arrow_type_depth(t: pa.DataType) -> int:
    """Levels of objects and lists a value of ``t`` nests, as the JSON FUSOU stores it as
    (a map is a list of [key, value] pairs)."""
    if t.num_fields == 0 and not isinstance(t, pa.StructType):
        # Every type but the nested ones: the common case, kept cheap.
        return arrow_type_depth(t.value_type) if isinstance(t, pa.DictionaryType) else 0
    if pa.types.is_map(t):
        return 2 + max(arrow_type_depth(t.key_type), arrow_type_depth(t.item_type))
    if pa.types.is_struct(t):
        return 1 + max((arrow_type_depth(t.field(i).type) for i in range(t.num_fields)), default=0)
    if pa.types.is_union(t):
        return max((arrow_type_depth(t.field(i).type) for i in range(t.num_fields)), default=0)
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    ):
        return 1 + arrow_type_depth(t.value_type)
    return 0


def check_arrow_schema(schema: pa.Schema, limits: RowLimits, label: str) -> None:
    """Columns and nesting of an Arrow schema (an IPC stream's, a Parquet file's)."""
    if len(schema) > limits.max_fields:
        raise InvalidArgument(label, limits.too_many_fields(len(schema)))
    for i, t in enumerate(schema.types):
        depth = arrow_type_depth(t)
        if depth > limits.max_depth:
            raise InvalidArgument(f"{label}.{schema.names[i]}", limits.too_deep(depth))


# -- values, vectorized ---------------------------------------------------------------------------


def check_times(values: pa.Array, limits: RowLimits, names: RowNames, column: str) -> None:
    """Every time (int64, or doubles on their way to it; no nulls) within the accepted range."""
    if len(values) == 0:
        return
    times = values.to_numpy(zero_copy_only=False)  # no copy: no nulls
    if times.min() >= limits.min_time_ms and times.max() <= limits.max_time_ms:
        return
    # Written so that nan (a Struct number may be one) counts as outside.
    inside = (times >= limits.min_time_ms) & (times <= limits.max_time_ms)
    i = int(np.flatnonzero(~inside)[0])
    field, row = names.name(i, column)
    raise InvalidArgument(field, row + limits.time_outside(times[i].item()))


def _value_sizes(column: pa.Array) -> np.ndarray | int:
    """Each value's size as FUSOU stores it (Avro binary, about): strings and bytes by their
    length, numbers 8 bytes, booleans 1; a constant where every value has the same."""
    t = column.type
    if pa.types.is_dictionary(t):
        column = column.dictionary_decode()
        t = column.type
    if holds_bytes(t):
        lengths = pc.binary_length(column)
        if lengths.null_count:
            lengths = lengths.fill_null(0)
        return np.asarray(lengths.to_numpy(zero_copy_only=False), dtype=np.int64)
    if pa.types.is_null(t):
        return 0
    if pa.types.is_boolean(t):
        return 1
    return 8  # long and double, the other normalized types


def check_row_sizes(table: pa.Table, limits: RowLimits, names: RowNames) -> None:
    """No row larger than ``max_row_bytes``. Needs columns of FUSOU's types (after
    normalization: nested values are JSON text by then)."""
    if table.num_rows == 0:
        return
    # The table's own buffers bound every row's size: a batch smaller than one row may be has
    # no row to check (the common case, at no cost).
    if table.get_total_buffer_size() <= limits.max_row_bytes:
        return
    sizes = np.zeros(table.num_rows, dtype=np.int64)
    for column in table.columns:
        for chunk_start, chunk in _chunks(column):
            part = _value_sizes(chunk)
            sizes[chunk_start : chunk_start + len(chunk)] += part
    over = np.flatnonzero(sizes > limits.max_row_bytes)
    if len(over):
        i = int(over[0])
        field, row = names.name(i)
        raise InvalidArgument(field, row + limits.too_large(int(sizes[i])))


def _chunks(column: pa.ChunkedArray) -> list[tuple[int, pa.Array]]:
    out = []
    start = 0
    for chunk in column.chunks:
        out.append((start, chunk))
        start += len(chunk)
    return out
