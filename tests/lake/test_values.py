"""Every kind of value FUSOU stores reaches the lake as ReadRange answers it: each field type,
nulls, nested JSON, bytes, the first and last instants FUSOU accepts (years 1 and 9999, on
days before and after 1970), and names with the punctuation FUSOU allows."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from fusou.config import Settings
from fusou.schema.time_bounds import MAX_TIME_MS, MIN_TIME_MS
from tests.lake.helpers import assert_lake_is_readrange, assert_snapshot_agrees, lake_table
from tests.read.conftest import Stubs
from tests.read.oracle import Oracle, archive, ingest

pytestmark = pytest.mark.integration


def _row(i: int, t: int) -> dict[str, object]:
    return {
        "timestamp": t,
        "n": i if i % 4 else None,
        "x": i / 3 if i % 5 else None,
        "ok": i % 2 == 0,
        "name": f"ship-{i}" if i % 3 else None,
        "raw": bytes([i % 256, 0, 255]),
        "fleet": {"ships": [i, i + 1], "flag": {"kind": "a" if i % 2 else "b"}},
        "always_null": None,
    }


async def test_every_type_and_the_extreme_times(stubs: Stubs, settings: Settings) -> None:
    times = [MIN_TIME_MS, MIN_TIME_MS + 1, -1, 0, 1_700_000_000_000, MAX_TIME_MS - 1, MAX_TIME_MS]
    rows = [_row(i, t) for i, t in enumerate(times)]
    await ingest(stubs.ingest, Oracle(), "ds", "values", rows, arrow=True)
    await archive(stubs.archiver, stubs.services.clock, "ds", "values")
    rt = stubs.services.runtime
    await assert_snapshot_agrees(rt.settings, rt.store, stubs.url, "ds", "values")
    assert await assert_lake_is_readrange(stubs, rt.settings, "ds", "values") == len(times)
    table = lake_table(rt.settings, "ds", "values")
    scan = table.scan().to_arrow()
    assert scan.schema.field("timestamp").type == pa.timestamp("us", "UTC")
    assert scan.schema.field("raw").type in (pa.binary(), pa.large_binary())
    first = scan.sort_by("timestamp").column("timestamp")[0].as_py()
    assert first == dt.datetime(1, 1, 1, tzinfo=dt.UTC)
    # One file per UTC day: years 1 and 9999, 1969-12-31, 1970-01-01 and 2023-11-14.
    days = {task.file.partition[0] for task in table.scan().plan_files()}
    assert len(days) == 5 and min(days) < 0 < max(days)


async def test_names_with_dots_and_dashes(stubs: Stubs, settings: Settings) -> None:
    rows = [{"timestamp": 1_700_000_000_000 + i, "v": i} for i in range(10)]
    await ingest(stubs.ingest, Oracle(), "game.v2", "battle-log.1", rows)
    await archive(stubs.archiver, stubs.services.clock, "game.v2", "battle-log.1")
    rt = stubs.services.runtime
    await assert_snapshot_agrees(rt.settings, rt.store, stubs.url, "game.v2", "battle-log.1")
    assert await assert_lake_is_readrange(stubs, rt.settings, "game.v2", "battle-log.1") == 10
