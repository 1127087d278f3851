"""Checking one raw fragment (CPU work, run off the event loop): it must be a Parquet file whose
columns FUSOU can store, with the table's time field; the answer is what the catalog records."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from fusou.errors import InvalidArgument
from fusou.formats.parquet_file import (
    NotParquet,
    RowGroupSpan,
    footer_of,
    metadata_of,
    read_row_group,
    read_whole,
    row_group_spans,
)
from fusou.records.batch import Batch, batch_from_arrow
from fusou.records.columns import int64_values
from fusou.records.limits import RowLimits, check_arrow_schema
from fusou.schema.model import FieldType


@dataclass(frozen=True)
class RowGroupInfo:
    offset: int  # relative to the fragment's start
    length: int
    rows: int
    first_row: int
    min_time: int
    max_time: int


@dataclass(frozen=True)
class FragmentInfo:
    rows: int
    min_time: int
    max_time: int
    types: dict[str, FieldType]
    footer: bytes
    row_groups: tuple[RowGroupInfo, ...]
    decoded_bytes: int  # the rows as Arrow in memory: what compacting them costs


def normalized(
    table: pa.Table, time_field: str, label: str, limits: RowLimits | None = None
) -> Batch:
    """A fragment's (or row group's) rows in FUSOU's types; InvalidArgument naming ``label``."""
    return batch_from_arrow(table, time_field, field_prefix=label, limits=limits)


def _check_schema(data: bytes | memoryview, limits: RowLimits, label: str) -> None:
    """Columns and nesting from the footer alone, before any column chunk is read."""
    try:
        schema = metadata_of(footer_of(data)).schema.to_arrow_schema()
    except NotParquet as exc:
        raise InvalidArgument(label, f"is not a Parquet file: {exc}") from None
    except (pa.ArrowException, OSError) as exc:
        raise InvalidArgument(label, f"has a schema FUSOU cannot read: {exc}") from None
    check_arrow_schema(schema, limits, label)


def _check_readable_alone(
    data: bytes | memoryview, footer: bytes, span: RowGroupSpan, label: str
) -> None:
    """A reader fetches a row group alone (its byte range and the stored footer): make sure
    that works now, rather than fail every read later."""
    start = len(data) - len(footer)
    if span.offset < 4 or span.offset + span.length > start:
        raise InvalidArgument(label, f"row group {span.index} lies outside the file's data")
    try:
        rows = read_row_group(
            footer,
            len(data),
            span.index,
            span.offset,
            data[span.offset : span.offset + span.length],
        ).num_rows
    except (pa.ArrowException, OSError) as exc:
        raise InvalidArgument(label, f"row group {span.index} does not read alone: {exc}") from None
    if rows != span.rows:
        raise InvalidArgument(label, f"row group {span.index} reads {rows} rows, not {span.rows}")


def inspect_fragment(
    data: bytes | memoryview, time_field: str, label: str, limits: RowLimits | None = None
) -> FragmentInfo:
    """With ``limits`` (a client's upload), also refuses a fragment past any of them."""
    if limits is not None:
        _check_schema(data, limits, label)
    try:
        table, meta, footer = read_whole(data)
    except NotParquet as exc:
        raise InvalidArgument(label, f"is not a Parquet file: {exc}") from None
    batch = normalized(table, time_field, label, limits)
    times = int64_values(batch.table.column(time_field).combine_chunks())
    groups: list[RowGroupInfo] = []
    for span in row_group_spans(meta):
        if span.rows == 0:
            continue  # nothing to read there
        _check_readable_alone(data, footer, span, label)
        part = times[span.first_row : span.first_row + span.rows]
        groups.append(
            RowGroupInfo(
                span.offset,
                span.length,
                span.rows,
                span.first_row,
                int(np.min(part)),
                int(np.max(part)),
            )
        )
    return FragmentInfo(
        rows=batch.num_rows,
        min_time=int(np.min(times)),
        max_time=int(np.max(times)),
        types=batch.types,
        footer=footer,
        row_groups=tuple(groups),
        decoded_bytes=int(batch.table.nbytes),
    )
