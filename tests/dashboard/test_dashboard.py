"""The dashboard over the four services: its figures are GetStats's, its runs are those the
archiver and compactor recorded, and a viewer limited to some datasets sees only those."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from fusou.api.reader.v1 import reader_pb2
from fusou.archive.archiver import Archiver
from fusou.catalog import runs
from fusou.catalog.runs import RunKind, RunOutcome, last_successful, recent_runs
from fusou.config import Settings
from fusou.dashboard.rates import RateSampler
from fusou.dashboard.snapshot import take_snapshot
from tests.compact.oracle import compact_until_done
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.read.test_equivalence import battle
from tests.support.stats import assert_age_between, figures_of, without_age

pytestmark = pytest.mark.integration


@pytest.fixture
async def stubs(settings: Settings) -> AsyncIterator[Stubs]:
    async with open_stubs(settings, metrics_interval_s=0.1, **SMALL_BLOCKS) as s:
        yield s


async def fetch(stubs: Stubs, path: str) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{stubs.services.server.metrics_port}{path}"
    async with aiohttp.ClientSession() as session, session.get(url) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body


async def get_stats(stubs: Stubs) -> Any:
    return figures_of(await stubs.reader.GetStats(reader_pb2.GetStatsRequest()))


async def test_the_dashboard_shows_get_stats_and_the_runs(stubs: Stubs) -> None:
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, "d1", "battle", [battle(i) for i in range(60)])
    await ingest(stubs.ingest, oracle, "d2", "battle", [battle(i) for i in range(7)])
    await archive(stubs.archiver, stubs.services.clock, "d1", "battle")
    await ingest(stubs.ingest, oracle, "d1", "battle", [battle(i) for i in range(60, 65)])
    compacted = await compact_until_done(stubs.compactor, "d1")

    before = await get_stats(stubs)
    status, shown = await fetch(stubs, "/dashboard/stats.json")
    after = await get_stats(stubs)
    assert status == 200
    figures = {
        (t["dataset_id"], t["table"]): {
            k: float(v) for k, v in t.items() if k in before[(t["dataset_id"], t["table"])]
        }
        for t in shown["tables"]
    }
    assert without_age(figures) == without_age(before) == without_age(after)
    assert_age_between(figures, before, after)
    assert figures["d1", "battle"]["optimized_rows"] == 60
    assert figures["d1", "battle"]["hot_rows"] == 5

    # Backlog and flags per dataset: d2's hot rows wait for archiving, not compaction.
    datasets = {d["flags"]["dataset_id"]: d for d in shown["datasets"]}
    assert datasets["d1"]["backlog_files"] == 0 and datasets["d1"]["tables"] == 1
    assert datasets["d1"]["flags"]["last_compacted_at"] is not None

    # The runs, newest first, as the calls answered.
    (archived,) = shown["archive_runs"]
    assert archived["outcome"] == "ok" and archived["rows"] == 60 and archived["tables"] == 1
    assert len(shown["compact_runs"]) == len(compacted)
    assert sum(r["rows"] for r in shown["compact_runs"]) == sum(
        t.output_rows for c in compacted for t in c.tables
    )

    # The page itself: every table, a chart of each kind, the runs.
    status, page = await fetch(stubs, "/dashboard?refresh=0")
    assert status == 200
    assert 'data-dataset="d1" data-table="battle"' in page
    assert 'data-dataset="d2" data-table="battle"' in page
    for chart in (
        "chart-rows",
        "chart-bytes",
        "chart-age",
        "chart-compression",
        "chart-backlog",
        "chart-archive-runs",
        "chart-compact-runs",
        "chart-rates",
    ):
        assert f'<div id="{chart}">' in page
    assert 'id="archive-runs"' in page
    status, _ = await fetch(stubs, "/dashboard?refresh=soon")
    assert status == 400


async def test_a_viewer_of_some_datasets_sees_only_those(stubs: Stubs) -> None:
    oracle = Oracle()
    for dataset in ("team-a", "team-b"):
        await ingest(stubs.ingest, oracle, dataset, "battle", [battle(i) for i in range(3)])
    pool = stubs.services.runtime.pool
    sampler = RateSampler(1.0)
    limited = await take_snapshot(pool, lambda d: d == "team-a", False, sampler)
    assert [(t.dataset_id, t.table) for t in limited.tables] == [("team-a", "battle")]
    assert [d.flags.dataset_id for d in limited.datasets] == ["team-a"]
    # Runs and rates mix every dataset.
    assert limited.archive_runs is None and limited.rates is None
    everything = await take_snapshot(pool, lambda _d: True, True, sampler)
    assert {t.dataset_id for t in everything.tables} == {"team-a", "team-b"}
    assert everything.archive_runs == []


async def test_a_failed_run_is_recorded_with_its_error_and_old_runs_go(
    stubs: Stubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = stubs.services.runtime
    pool = runtime.pool
    job = Archiver(runtime.settings, pool, runtime.store, runtime.registry)
    with pytest.raises(RuntimeError):
        async with job.recorded_run(RunKind.ARCHIVE) as tally:
            tally.rows = 3
            raise RuntimeError("the store went away")
    (run,) = await recent_runs(pool, RunKind.ARCHIVE, 5)
    assert run.outcome is RunOutcome.FAILED
    assert run.error == "RuntimeError: the store went away"
    assert run.rows == 3
    # Every table it tried failed: failed, not a success; some did: partial.
    await pool.execute("INSERT INTO fusou_datasets (dataset_id) VALUES ('d9')")
    for done, outcome in ((0, RunOutcome.FAILED), (1, RunOutcome.PARTIAL), (2, RunOutcome.OK)):
        async with job.recorded_run(RunKind.ARCHIVE) as tally:
            tally.attempted_tables, tally.tables, tally.failed_tables = 2, done, 2 - done
            tally.datasets.add("d9")
        latest = (await recent_runs(pool, RunKind.ARCHIVE, 1))[0]
        assert (latest.outcome, latest.datasets) == (outcome, ("d9",))
    assert RunKind.ARCHIVE in await last_successful(pool)
    monkeypatch.setattr(runs, "KEPT_PER_KIND", 2)
    for rows in (1, 2):
        async with job.recorded_run(RunKind.ARCHIVE) as tally:
            tally.rows = rows
    assert [r.rows for r in await recent_runs(pool, RunKind.ARCHIVE, 5)] == [2, 1]


async def test_recording_a_run_never_fails_the_run(stubs: Stubs) -> None:
    runtime = stubs.services.runtime
    closed = await asyncpg.create_pool(stubs.url, min_size=1, max_size=1)
    await closed.close()
    job = Archiver(runtime.settings, closed, runtime.store, runtime.registry)
    async with job.recorded_run(RunKind.COMPACT) as tally:
        tally.rows = 1
    assert await recent_runs(runtime.pool, RunKind.COMPACT, 5) == []


async def test_a_run_names_no_dataset_being_purged_or_gone(stubs: Stubs) -> None:
    runtime = stubs.services.runtime
    pool = runtime.pool
    await pool.execute(
        "INSERT INTO fusou_datasets (dataset_id, purging) VALUES ('alive', false), ('going', true)"
    )
    job = Archiver(runtime.settings, pool, runtime.store, runtime.registry)
    async with job.recorded_run(RunKind.ARCHIVE) as tally:
        tally.datasets |= {"alive", "going", "gone"}
        tally.attempted_tables = tally.failed_tables = 1
        tally.error = "going/battle: it broke"
    (run,) = await recent_runs(pool, RunKind.ARCHIVE, 1)
    assert run.datasets == ("alive",)
    assert run.error == runs.SCRUBBED_ERROR
