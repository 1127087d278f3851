"""The injectable clock: what the system clock and the tests' clock read, and that the services
stamp and judge rows with the clock they are given."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from fusou.api.archiver.v1 import archiver_pb2
from fusou.clock import SYSTEM_CLOCK, ManualClock
from fusou.config import Settings
from fusou.testing import running_services
from tests.archive.oracle import battle, fetch, ingest_batches
from tests.read.conftest import open_stubs
from tests.read.oracle import Oracle
from tests.upload.helpers import upload

YEAR_S = 365 * 24 * 3600


def test_the_system_clock_reads_the_wall_clock() -> None:
    before = int(time.time() * 1000)
    ms = SYSTEM_CLOCK.now_ms()
    now = SYSTEM_CLOCK.now()
    after = int(time.time() * 1000)
    assert before <= ms <= after
    assert now.tzinfo is not None and now.utcoffset() == dt.timedelta(0)
    assert before <= int(now.timestamp() * 1000) <= after


def test_a_manual_clock_moves_by_what_it_is_told() -> None:
    clock = ManualClock()
    before = SYSTEM_CLOCK.now_ms()
    clock.advance(90)
    clock.advance(0.5)
    ms = clock.now_ms()
    after = SYSTEM_CLOCK.now_ms()
    assert before + 90_500 <= ms <= after + 90_500
    # Both readings are the same clock.
    assert abs(clock.now().timestamp() * 1000 - clock.now_ms()) < 1000
    assert clock.now() - SYSTEM_CLOCK.now() > dt.timedelta(seconds=89)


def test_a_manual_clock_never_goes_back() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="forward"):
        clock.advance(-1)


@pytest.mark.integration
async def test_ingest_stamps_rows_with_the_services_clock(settings: Settings) -> None:
    clock = ManualClock()
    clock.advance(YEAR_S)
    async with running_services(settings, clock=clock) as services:
        assert services.clock is clock and services.runtime.clock is clock
        before = clock.now_ms()
        await ingest_batches(services.target, "u1", "battle", [[battle(i) for i in range(5)]])
        after = clock.now_ms()
    assert settings.database.url is not None
    stamps = [r["ingested_at"] for r in await fetch(settings.database.url, "TABLE fusou_buffer")]
    assert len(stamps) == 5
    assert all(before <= t <= after for t in stamps), (before, stamps, after)


@pytest.mark.integration
async def test_uploads_are_stamped_and_archive_cutoffs_taken_with_the_services_clock(
    settings: Settings,
) -> None:
    async with open_stubs(settings, archive_min_age_s=3600.0) as stubs:
        clock = stubs.services.clock
        clock.advance(YEAR_S)
        before = clock.now_ms()
        await upload(stubs.ingest, stubs.url, "u1", [("battle", [battle(1)])], {"battle": Oracle()})
        after = clock.now_ms()
        (stamp,) = [r["ingested_at"] for r in await fetch(stubs.url, "TABLE fusou_files")]
        assert before <= stamp <= after

        await ingest_batches(stubs.services.target, "u1", "battle", [[battle(2)]])
        # An hour by the services' clock, not by the wall clock, makes the row old enough.
        young = await stubs.archiver.Archive(archiver_pb2.ArchiveRequest())
        assert young.total_rows == 0
        clock.advance(3601)
        old = await stubs.archiver.Archive(archiver_pb2.ArchiveRequest())
        assert old.total_rows == 1
