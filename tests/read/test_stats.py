"""GetStats: where a table's rows are, counted by kind, as the moves go on."""

from __future__ import annotations

import pytest

from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.reader.v1 import reader_pb2
from fusou.api.timestamps import timestamp_of_ms
from tests.compact.oracle import compact_until_done
from tests.read.conftest import Stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.read.test_equivalence import battle, minute
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS = "s1"


async def counts(stubs: Stubs) -> tuple[int, int, int, int, int]:
    answer = await stubs.reader.GetStats(reader_pb2.GetStatsRequest(dataset_id=DS))
    (t,) = answer.tables
    return t.hot_rows, t.cold_rows, t.raw_rows, t.optimized_rows, t.pending_deletions


async def test_rows_are_counted_in_every_place(stubs: Stubs) -> None:
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i) for i in range(50)])
    assert await counts(stubs) == (50, 0, 0, 0, 0)
    await archive(stubs.archiver, stubs.services.clock, DS, "battle")
    await upload(
        stubs.ingest,
        stubs.url,
        DS,
        [("battle", [battle(i) for i in range(50, 70)])],
        {"battle": oracle},
    )
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i) for i in range(70, 75)])
    assert await counts(stubs) == (5, 50, 20, 0, 0)
    await stubs.archiver.DeleteRows(
        archiver_pb2.DeleteRowsRequest(
            dataset_id=DS,
            table="battle",
            start_time=timestamp_of_ms(minute(0)),
            end_time=timestamp_of_ms(minute(10)),
        )
    )
    assert await counts(stubs) == (5, 50, 20, 0, 1)
    await compact_until_done(stubs.compactor, DS)
    # Compaction took the cold and raw rows, less the ten deleted.
    assert await counts(stubs) == (5, 0, 0, 60, 0)
