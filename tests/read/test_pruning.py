"""Stats show the pruning: from a day of archived data, a one-hour read fetches only the blocks
the block index says overlap, with coalesced GETs, and a repeated read comes from the cache."""

from __future__ import annotations

import pytest

from fusou.config import Settings
from tests.read.conftest import open_stubs
from tests.read.oracle import (
    DAY,
    DAY0,
    HOUR,
    MINUTE,
    Oracle,
    archive,
    check_arrow,
    check_stats,
    ingest,
    overlapping_blocks,
    read,
    read_request,
)

pytestmark = pytest.mark.integration

DS = "u1"
TABLE = "battle"


async def test_one_hour_of_a_day_fetches_only_the_overlapping_blocks(settings: Settings) -> None:
    async with open_stubs(settings, archive_min_age_s=0.0, archive_block_rows=60) as stubs:
        oracle = Oracle()
        rows = [
            {"timestamp": DAY0 + m * MINUTE, "api_no": m, "ship": f"s{m % 13}", "hp": m / 8}
            for m in range(24 * 60)
        ]
        for start in range(0, len(rows), 480):
            await ingest(stubs.ingest, oracle, DS, TABLE, rows[start : start + 480])
        result = await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
        assert (result.rows, result.blocks) == (1440, 24)
        every_block = await overlapping_blocks(stubs.url, DS, TABLE, DAY0 - DAY, DAY0 + 2 * DAY)
        assert len(every_block) == 24

        # An hour on the blocks' edges overlaps one block; one that is not overlaps two, as
        # does one starting on a block's last row.
        for start, end, n_blocks in (
            (DAY0 + 5 * HOUR, DAY0 + 6 * HOUR, 1),
            (DAY0 + 9 * HOUR + 30 * MINUTE, DAY0 + 10 * HOUR + 30 * MINUTE, 2),
            (DAY0 + 15 * HOUR - MINUTE, DAY0 + 16 * HOUR - MINUTE, 2),
        ):
            blocks = await overlapping_blocks(stubs.url, DS, TABLE, start, end)
            assert len(blocks) == n_blocks
            first = await read(stubs.reader, read_request(DS, TABLE, start, end))
            rows_read = check_arrow(first, oracle, start, end)
            assert len(rows_read) == 60
            await check_stats(first, oracle, stubs.url, DS, TABLE, start, end)
            s = first.stats
            assert (s.hot_rows, s.cache_hits, s.duplicates_removed) == (0, 0, 0)
            assert s.blocks_fetched == n_blocks
            assert s.cold_rows == sum(b.row_count for b in blocks) == 60 * n_blocks
            # Neighbouring blocks of one object: one GET, exactly their bytes.
            assert s.get_requests == 1
            assert s.bytes_fetched == sum(b.byte_length for b in blocks)
            assert s.bytes_fetched < sum(b.byte_length for b in every_block) / 10

            again = await read(stubs.reader, read_request(DS, TABLE, start, end))
            assert check_arrow(again, oracle, start, end) == rows_read
            a = again.stats
            assert (a.cache_hits, a.blocks_fetched, a.get_requests, a.bytes_fetched) == (
                n_blocks,
                0,
                0,
                0,
            )
            assert a.cold_rows == s.cold_rows and a.rows_returned == 60

        # The whole day: the five cached blocks are hits, the rest fetched.
        start, end = DAY0, DAY0 + DAY
        whole = await read(stubs.reader, read_request(DS, TABLE, start, end))
        check_arrow(whole, oracle, start, end)
        await check_stats(whole, oracle, stubs.url, DS, TABLE, start, end)
        assert (whole.stats.cache_hits, whole.stats.blocks_fetched) == (5, 19)
        assert whole.stats.cold_rows == 1440 and whole.stats.rows_returned == 1440
