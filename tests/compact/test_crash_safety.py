"""Guarantee 4 for compaction under injected faults: at every step of a run, the buffer plus
the active files hold every row exactly once and reads are right; a rerun finishes the work;
orphans and replaced objects go only after the grace period; registered objects never."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fusou.compact.compactor import CompactOptions, Compactor, Status
from fusou.config import Settings
from tests.archive.oracle import Crash, CrashAt, exactly_once
from tests.compact.oracle import (
    COMPACTED,
    NOTHING_TO_DO,
    active_kinds,
    compact_until_done,
    every_seq,
    flags,
    registered,
    stored,
)
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.read.test_equivalence import READS, battle, read_all
from tests.support.s3server import S3Server, running_s3_server
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS, TABLE = "u1", "battle"
POINTS = ["read", "upload", "uploaded", "commit", "committed"]
# Small row groups, so a compacted file has several and reads cut through them.
TUNED = {**SMALL_BLOCKS, "compact_row_group_rows": 16}


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


class CancelAt(CrashAt):
    """A checkpoint that cancels the run where ``CrashAt`` would crash it."""

    async def __call__(self, name: str) -> None:
        try:
            await super().__call__(name)
        except Crash:
            raise CancelledForTest from None


class CancelledForTest(BaseException):
    """Stands for the run's task being cancelled (a BaseException, as CancelledError is)."""


async def _load(stubs: Stubs, oracle: Oracle) -> set[int]:
    """Cold files, two raw fragments and some hot rows; distinct records, so that every seq
    must survive every move exactly once."""
    for k in range(3):
        rows = [battle(i) for i in range(k * 40, k * 40 + 40)]
        await ingest(stubs.ingest, oracle, DS, TABLE, rows)
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    fragments = [
        (TABLE, [battle(i) for i in range(120, 150)]),
        (TABLE, [battle(i) for i in range(150, 170)]),
    ]
    await upload(stubs.ingest, stubs.url, DS, fragments, {TABLE: oracle})
    await ingest(stubs.ingest, oracle, DS, TABLE, [battle(i) for i in range(170, 180)])
    return {r.seq for r in oracle.rows}


async def _fault_and_recover(settings: Settings, point: str, *, cancel: bool = False) -> None:
    async with open_stubs(settings, **TUNED) as stubs:
        rt = stubs.services.runtime
        url, store = stubs.url, rt.store
        oracle = Oracle()
        seqs = await _load(stubs, oracle)
        kinds_before = await active_kinds(url)
        assert kinds_before["cold"] >= 3 and kinds_before["raw"] == 2

        fault = (CancelAt if cancel else CrashAt)(point)
        with pytest.raises(CancelledForTest if cancel else Crash):
            await Compactor(rt.settings, rt.pool, store, rt.registry, checkpoint=fault).compact(
                CompactOptions(dataset_id=DS)
            )
        assert point in fault.seen

        # Right after the fault: every row exactly once, in the old state or the new one.
        assert exactly_once(await every_seq(url, store), seqs) == []
        kinds = await active_kinds(url)
        if point == "committed":
            assert set(kinds) == {"optimized"}
        else:
            assert kinds == kinds_before
        orphans = await stored(store) - await registered(url)
        if point in ("upload", "uploaded", "commit"):
            # The compacted file went up but its registration never committed.
            assert len(orphans) == 1 and next(iter(orphans)).startswith(f"optimized/{DS}/")
        else:
            assert orphans == set()
        # The failed run gave its claim back and left the dataset flagged.
        state = await flags(url, DS)
        assert state["compaction_in_progress"] is False and state["compaction_needed"] is True
        await read_all(stubs, oracle, DS, TABLE, READS)

        # A rerun finishes the work; the default grace keeps young orphans and replaced files.
        results = await compact_until_done(stubs.compactor, DS)
        assert results[-1].status == (NOTHING_TO_DO if point == "committed" else COMPACTED)
        assert exactly_once(await every_seq(url, store), seqs) == []
        assert set(await active_kinds(url)) == {"optimized"}
        assert await stored(store) - await registered(url) == orphans
        retired = await registered(url, "retired")
        assert retired and retired <= await stored(store)
        await read_all(stubs, oracle, DS, TABLE, READS)

        # Past the grace: orphans and replaced objects go, registered active ones never.
        no_grace = Compactor(rt.settings.replace(delete_grace_s=0.0), rt.pool, store, rt.registry)
        (outcome,) = await no_grace.compact(CompactOptions(dataset_id=DS))
        assert outcome.status is Status.NOTHING_TO_DO
        assert await registered(url, "retired") == set()
        assert await stored(store) == await registered(url) == await registered(url, "active")
        for key in await registered(url):
            await store.head(key)
        assert exactly_once(await every_seq(url, store), seqs) == []
        await read_all(stubs, oracle, DS, TABLE, READS)


@pytest.mark.parametrize("point", POINTS)
async def test_crash_at_each_step_local(settings: Settings, point: str) -> None:
    await _fault_and_recover(settings, point)


@pytest.mark.parametrize("point", ["read", "uploaded", "commit"])
async def test_cancellation_at_a_step_local(settings: Settings, point: str) -> None:
    await _fault_and_recover(settings, point, cancel=True)


@pytest.mark.parametrize("point", POINTS)
async def test_crash_at_each_step_s3(settings: Settings, s3: S3Server, point: str) -> None:
    s3_settings = settings.replace(
        object_store_url=f"s3://{s3.new_bucket()}/prefix", s3_endpoint_url=s3.endpoint_url
    )
    await _fault_and_recover(s3_settings, point)
