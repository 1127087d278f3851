"""What compacted Parquet files say about themselves, and the time read back as FUSOU uses it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from fusou.formats.parquet_file import (
    TIME_TYPE,
    stored_times,
    times_as_int64,
)


def _times(n: int) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(np.arange(1_700_000_000_000, 1_700_000_000_000 + n))])


def test_times_are_stored_and_read_back_without_copying_values() -> None:
    times = _times(10)
    stored = stored_times(times)
    assert stored.type == TIME_TYPE
    table = pa.table({"other": pa.array(range(10)), "timestamp": stored})
    back = times_as_int64(table, "timestamp")
    assert back.schema.field("timestamp").type == pa.int64()
    assert back.column("timestamp").equals(times)
    assert back.column("other").equals(table.column("other"))
    # One buffer all along: the values are relabelled, never copied.
    address = times.chunk(0).buffers()[1].address
    assert stored.chunk(0).buffers()[1].address == address
    assert back.column("timestamp").chunk(0).buffers()[1].address == address


def test_int64_times_of_older_files_are_left_as_they_are() -> None:
    table = pa.table({"timestamp": _times(3)})
    assert times_as_int64(table, "timestamp") is table
    assert times_as_int64(table, "no_such_field") is table


def test_only_millisecond_timestamps_are_read_as_epoch_milliseconds() -> None:
    # Another unit would mean other numbers: not FUSOU's form, left to the schema to refuse.
    table = pa.table({"timestamp": _times(3).cast(pa.timestamp("us", tz="UTC"))})
    assert times_as_int64(table, "timestamp") is table
    # Whatever the zone, the stored instant is the same number of milliseconds.
    naive = pa.table({"timestamp": _times(3).cast(pa.timestamp("ms"))})
    assert times_as_int64(naive, "timestamp").column(0).equals(_times(3))
