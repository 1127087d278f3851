"""Compacted files read back the same whether they store the time as a timestamp (as they do
now) or as int64 (as files written before did): FUSOU reads int64 epoch milliseconds."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusou.compact.output import OutputFile, ParquetFilesWriter
from fusou.formats.avro_container import INGESTED_AT_FIELD, SEQ_FIELD
from fusou.formats.file_metadata import FileDescription
from fusou.formats.parquet_file import (
    TIME_TYPE,
    footer_of,
    metadata_of,
    row_group_spans,
)
from fusou.read.decode import parquet_rows, row_group_rows

T0 = 1_700_000_000_000
ROWS = pa.table(
    {
        "timestamp": pa.array(T0 + np.arange(100, dtype=np.int64) // 3),
        "ship": pa.array([f"ship-{i % 4}" for i in range(100)]),
        SEQ_FIELD: pa.array(np.arange(500, 600, dtype=np.int64)),
        INGESTED_AT_FIELD: pa.array(np.full(100, T0 + 5000, dtype=np.int64)),
    }
)


def _new_style() -> OutputFile:
    described = FileDescription("u1", "battle", 1, (), "timestamp", SEQ_FIELD)
    writer = ParquetFilesWriter(ROWS.schema, described, 1 << 30, 30)
    writer.add(ROWS)
    (f,) = writer.finish()
    return f


def _old_style() -> bytes:
    """A compacted file as written before the time was typed: plain int64, no metadata."""
    sink = io.BytesIO()
    pq.write_table(ROWS, sink, row_group_size=30, store_schema=False)
    return sink.getvalue()


def test_the_new_file_stores_a_timestamp_and_the_old_one_an_int64() -> None:
    new = pq.read_schema(pa.BufferReader(_new_style().data))
    old = pq.read_schema(pa.BufferReader(_old_style()))
    assert (new.field("timestamp").type, old.field("timestamp").type) == (TIME_TYPE, pa.int64())


@pytest.mark.parametrize("string_dictionaries", [False, True])
def test_whole_files_of_either_form_read_as_int64_times(string_dictionaries: bool) -> None:
    for data in (bytes(_new_style().data), _old_style()):
        got = parquet_rows(data, "timestamp", None, string_dictionaries=string_dictionaries)
        assert got.schema.field("timestamp").type == pa.int64()
        assert got.column("timestamp").equals(ROWS.column("timestamp"))
        assert got.column(SEQ_FIELD).equals(ROWS.column(SEQ_FIELD))


def test_row_groups_of_either_form_read_alone_as_int64_times() -> None:
    for data in (bytes(_new_style().data), _old_style()):
        footer = footer_of(data)
        spans = row_group_spans(metadata_of(footer))
        assert len(spans) == 4
        for span in spans:
            got = row_group_rows(
                footer,
                len(data),
                span.index,
                span.offset,
                data[span.offset : span.offset + span.length],
                "timestamp",
                None,
            )
            assert got.schema.field("timestamp").type == pa.int64()
            want = ROWS.slice(span.first_row, span.rows)
            assert got.column("timestamp").equals(want.column("timestamp"))
