"""Compaction claims are renewed while their run lives: a live run keeps its dataset however
long it stalls, a dead runner's dataset is taken over once its claim's TTL has passed, and a
run whose claim was taken from it finishes without harm. Small TTLs, through the settings."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest

from fusou.api.compactor.v1 import compactor_pb2
from fusou.compact.compactor import CompactOptions, Compactor, Status
from fusou.config import Settings
from tests.archive.oracle import Hold, parked
from tests.compact.oracle import COMPACTED, SKIPPED_BUSY, compact_until_done
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle
from tests.read.test_equivalence import READS, battle, read_all
from tests.support.grpcurl import clean_env
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS, TABLE = "u1", "battle"
# Renewed every third of it: a renewal may be late by two thirds (1.3 s) before a claim lapses.
TTL_S = 2.0
# Liveness waits: generous bounds, not timing claims.
WAIT_S = 60.0
ROOT = Path(__file__).resolve().parents[2]


async def _upload(stubs: Stubs, oracle: Oracle, lo: int, hi: int) -> None:
    await upload(
        stubs.ingest, stubs.url, DS, [(TABLE, [battle(i) for i in range(lo, hi)])], {TABLE: oracle}
    )


async def claim(url: str) -> dict[str, Any]:
    """The dataset's claim, and the database's clock that judges it."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT compaction_in_progress AS held, compaction_claimed_by AS runner, "
            "compaction_claim_expires_at AS expires, compaction_needed AS flagged, now() AS now "
            "FROM fusou_datasets WHERE dataset_id = $1",
            DS,
        )
    finally:
        await conn.close()
    assert row is not None
    return dict(row)


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {WAIT_S}s")
        await asyncio.sleep(0.1)


async def past(url: str, moment: dt.datetime) -> bool:
    return bool((await claim(url))["now"] > moment)


async def scheduled(stubs: Stubs) -> list[tuple[str, int]]:
    answer = await stubs.compactor.Compact(compactor_pb2.CompactRequest())
    return [(d.dataset_id, d.status) for d in answer.datasets]


async def test_a_live_run_stalled_past_the_ttl_keeps_its_claim(settings: Settings) -> None:
    async with open_stubs(settings, **SMALL_BLOCKS, compact_claim_ttl_s=TTL_S) as stubs:
        oracle = Oracle()
        await _upload(stubs, oracle, 0, 20)
        await _upload(stubs, oracle, 20, 40)
        rt = stubs.services.runtime
        hold = Hold("read")
        runner = Compactor(rt.settings, rt.pool, rt.store, rt.registry, checkpoint=hold)
        async with parked(runner.compact(CompactOptions(dataset_id=DS)), hold) as run:
            first = await claim(stubs.url)
            assert first["held"] and first["runner"] == runner.runner_id
            # Stalled until the claim as first taken would have lapsed, and a TTL more.
            lapsed = first["expires"] + dt.timedelta(seconds=TTL_S)
            await until(lambda: past(stubs.url, lapsed), "the database clock passing the TTL")
            now = await claim(stubs.url)
            assert now["runner"] == runner.runner_id and now["expires"] > now["now"]
            # So other runners still find the dataset busy: by name, or flagged by new data.
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id=DS))
            assert err.value.code() == grpc.StatusCode.ABORTED
            await _upload(stubs, oracle, 40, 50)
            assert await scheduled(stubs) == [(DS, SKIPPED_BUSY)]
        (outcome,) = await run
        assert outcome.status is Status.COMPACTED
        released = await claim(stubs.url)
        assert not released["held"] and released["runner"] is None and released["flagged"]
        # The renewing stopped with the release: nothing brings the claim back.
        assert runner._lease._keeper._tasks == {}  # noqa: SLF001
        results = await compact_until_done(stubs.compactor, DS)
        assert results[-1].status == COMPACTED
        await read_all(stubs, oracle, DS, TABLE, READS, compacted=True)


async def test_a_dead_runners_claim_lapses_after_the_ttl(settings: Settings) -> None:
    async with open_stubs(settings, **SMALL_BLOCKS) as stubs:
        oracle = Oracle()
        await _upload(stubs, oracle, 0, 20)
        await _upload(stubs, oracle, 20, 40)
        assert settings.database.url is not None and settings.store.url is not None
        env = clean_env(
            FUSOU_DATABASE_URL=settings.database.url,
            FUSOU_OBJECT_STORE_URL=settings.store.url,
            FUSOU_COMPACT_CLAIM_TTL_S=str(TTL_S),
            FUSOU_CPU_WORKERS="0",
            PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
        )
        # Another process, so that it can die as a runner dies: killed, its finally blocks
        # never run, its claim never released.
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.compact.parked_runner",
            DS,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), WAIT_S)).decode()
            assert line.startswith("parked "), line
            dead = line.split()[1]
            # While it lives, its claim outlives the TTL.
            first = await claim(stubs.url)
            assert first["runner"] == dead
            await until(lambda: past(stubs.url, first["expires"]), "the first expiry passing")
            assert (await claim(stubs.url))["expires"] > first["expires"]
            await _upload(stubs, oracle, 40, 50)
            assert await scheduled(stubs) == [(DS, SKIPPED_BUSY)]
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

        # Dead: nothing renews its claim, which ends within one TTL of the death.
        at_death = await claim(stubs.url)
        assert at_death["runner"] == dead
        assert at_death["expires"] <= at_death["now"] + dt.timedelta(seconds=TTL_S)
        # Another runner takes the dataset over once it has lapsed.
        taken: list[tuple[str, int]] = []

        async def taken_over() -> bool:
            taken[:] = await scheduled(stubs)
            return taken != [(DS, SKIPPED_BUSY)]

        await until(taken_over, "a scheduled run taking the dataset over")
        assert taken == [(DS, COMPACTED)]
        assert (await claim(stubs.url))["expires"] is None
        await read_all(stubs, oracle, DS, TABLE, READS, compacted=True)


async def test_a_run_whose_claim_is_taken_finishes_and_leaves_it(
    stubs: Stubs, caplog: pytest.LogCaptureFixture
) -> None:
    """A claim lost while the run goes on (it lapsed during a database outage and another
    runner took it): the run logs it and finishes under its table lock; its release leaves
    the other runner's claim alone."""
    caplog.set_level(logging.WARNING, logger="fusou.compact.claim")
    oracle = Oracle()
    await _upload(stubs, oracle, 0, 20)
    await _upload(stubs, oracle, 20, 40)
    rt = stubs.services.runtime
    hold = Hold("read")
    runner = Compactor(
        rt.settings.replace(compact_claim_ttl_s=TTL_S / 4),
        rt.pool,
        rt.store,
        rt.registry,
        checkpoint=hold,
    )
    async with parked(runner.compact(CompactOptions(dataset_id=DS)), hold) as run:
        conn = await asyncpg.connect(stubs.url)
        try:
            await conn.execute(
                "UPDATE fusou_datasets SET compaction_claimed_by = 'other', "
                "compaction_claim_expires_at = now() + interval '1 hour' WHERE dataset_id = $1",
                DS,
            )
        finally:
            await conn.close()

        async def noticed() -> bool:
            return "compaction claim on u1 was lost" in caplog.text

        await until(noticed, "the renewal noticing the lost claim")
    (outcome,) = await run
    assert outcome.status is Status.COMPACTED
    state = await claim(stubs.url)
    assert state["held"] and state["runner"] == "other"
    await read_all(stubs, oracle, DS, TABLE, READS, compacted=True)
