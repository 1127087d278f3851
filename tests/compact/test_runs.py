"""How runs are chosen and bounded: the scheduled mode, the seed's flags with expiring claims,
the time bound, retries of transient store errors, and bad requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import asyncpg
import grpc
import pytest

from fusou.api.compactor.v1 import compactor_pb2
from fusou.compact.compactor import CompactOptions, Compactor, Status
from fusou.objectstore.base import (
    ObjectInfo,
    ObjectStore,
    PutData,
    TransientObjectStoreError,
)
from tests.compact.oracle import (
    COMPACTED,
    NOTHING_TO_DO,
    SKIPPED_BUSY,
    active_kinds,
    compact_until_done,
    flags,
    registered,
    stored,
)
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, ingest
from tests.read.test_equivalence import READS, battle, read_all
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

TABLE = "battle"


async def _upload(stubs: Stubs, dataset: str, oracle: Oracle, lo: int = 0, hi: int = 40) -> None:
    fragments = [(TABLE, [battle(i) for i in range(lo, (lo + hi) // 2)])]
    fragments.append((TABLE, [battle(i) for i in range((lo + hi) // 2, hi)]))
    await upload(stubs.ingest, stubs.url, dataset, fragments, {TABLE: oracle})


async def _execute(url: str, query: str, *args: Any) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(query, *args)
    finally:
        await conn.close()


async def test_scheduled_runs_take_flagged_datasets_within_the_limit(settings: Any) -> None:
    async with open_stubs(settings, **SMALL_BLOCKS, compact_max_datasets_per_run=2) as stubs:
        oracles = {name: Oracle() for name in ("a", "b", "c")}
        for name, oracle in oracles.items():
            await _upload(stubs, name, oracle)
        # Hot rows only: nothing for compaction, not flagged.
        await ingest(stubs.ingest, Oracle(), "hot-only", TABLE, [battle(1)])
        assert (await flags(stubs.url, "hot-only"))["compaction_needed"] is False

        first = await stubs.compactor.Compact(compactor_pb2.CompactRequest())
        assert [(d.dataset_id, d.status) for d in first.datasets] == [
            ("a", COMPACTED),
            ("b", COMPACTED),
        ]
        assert first.datasets[0].tables[0].input_files == 2
        second = await stubs.compactor.Compact(compactor_pb2.CompactRequest())
        assert [(d.dataset_id, d.status) for d in second.datasets] == [("c", COMPACTED)]
        third = await stubs.compactor.Compact(compactor_pb2.CompactRequest())
        assert list(third.datasets) == []
        for name, oracle in oracles.items():
            state = await flags(stubs.url, name)
            assert state["compaction_needed"] is False
            assert state["compaction_in_progress"] is False
            assert state["compaction_claimed_by"] is None
            assert state["last_compacted_at"] is not None
            await read_all(stubs, oracle, name, TABLE, READS, compacted=True)
        # Data arriving later flags the dataset again.
        await _upload(stubs, "a", oracles["a"], 40, 60)
        again = await stubs.compactor.Compact(compactor_pb2.CompactRequest())
        assert [(d.dataset_id, d.status) for d in again.datasets] == [("a", COMPACTED)]
        await read_all(stubs, oracles["a"], "a", TABLE, READS, compacted=True)


async def test_a_crashed_runners_claim_lapses(stubs: Stubs) -> None:
    oracle = Oracle()
    await _upload(stubs, "u1", oracle)
    # A runner claimed the dataset and died: its claim is live for a while.
    await _execute(
        stubs.url,
        "UPDATE fusou_datasets SET compaction_in_progress = true, compaction_needed = true, "
        "compaction_claimed_by = 'gone', "
        "compaction_claim_expires_at = now() + interval '1 hour' WHERE dataset_id = 'u1'",
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id="u1"))
    assert err.value.code() == grpc.StatusCode.ABORTED
    busy = await stubs.compactor.Compact(compactor_pb2.CompactRequest())
    assert [(d.dataset_id, d.status) for d in busy.datasets] == [("u1", SKIPPED_BUSY)]
    assert (await flags(stubs.url, "u1"))["compaction_claimed_by"] == "gone"
    # Once it expires, the next scheduled run takes the dataset over.
    await _execute(
        stubs.url,
        "UPDATE fusou_datasets SET compaction_needed = false, "
        "compaction_claim_expires_at = now() - interval '1 second' WHERE dataset_id = 'u1'",
    )
    taken = await stubs.compactor.Compact(compactor_pb2.CompactRequest())
    assert [(d.dataset_id, d.status) for d in taken.datasets] == [("u1", COMPACTED)]
    state = await flags(stubs.url, "u1")
    assert state["compaction_in_progress"] is False and state["compaction_claimed_by"] is None
    await read_all(stubs, oracle, "u1", TABLE, READS, compacted=True)


async def test_a_run_out_of_time_stops_between_consistent_states(stubs: Stubs) -> None:
    oracle = Oracle()
    await _upload(stubs, "u1", oracle)
    rt = stubs.services.runtime

    async def slow(point: str) -> None:
        if point == "uploaded":
            await asyncio.sleep(5)

    short = Compactor(
        rt.settings.replace(compact_timeout_ms=500), rt.pool, rt.store, rt.registry, checkpoint=slow
    )
    (outcome,) = await short.compact(CompactOptions(dataset_id="u1"))
    # Cut short after the upload, before the commit: an orphan, the inputs still active.
    assert outcome.status is Status.PARTIAL and outcome.tables[0].more_remaining
    assert (await active_kinds(stubs.url)) == {"raw": 2}
    assert len(await stored(rt.store) - await registered(stubs.url)) == 1
    state = await flags(stubs.url, "u1")
    assert state["compaction_needed"] is True and state["compaction_in_progress"] is False
    await read_all(stubs, oracle, "u1", TABLE, READS)
    # Out of time before it starts: nothing happens.
    none = Compactor(rt.settings.replace(compact_timeout_ms=1), rt.pool, rt.store, rt.registry)
    (outcome,) = await none.compact(CompactOptions(dataset_id="u1"))
    assert outcome.status is Status.PARTIAL and (await active_kinds(stubs.url)) == {"raw": 2}
    # The next run with time enough finishes.
    results = await compact_until_done(stubs.compactor, "u1")
    assert results[-1].status == COMPACTED
    await read_all(stubs, oracle, "u1", TABLE, READS, compacted=True)


class FlakyStore(ObjectStore):
    """The test's store, failing the first call of each kind with a transient error."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.failed: list[str] = []

    def _flake(self, what: str) -> None:
        if what not in self.failed:
            self.failed.append(what)
            raise TransientObjectStoreError(f"injected: {what}")

    async def put(self, key: str, data: PutData) -> ObjectInfo:
        self._flake("put")
        return await self.inner.put(key, data)

    async def get(self, key: str) -> bytes:
        self._flake("get")
        return await self.inner.get(key)

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        self._flake("get_range")
        return await self.inner.get_range(key, offset, length)

    async def head(self, key: str) -> ObjectInfo:
        return await self.inner.head(key)

    async def check(self) -> None:
        await self.inner.check()

    async def delete(self, key: str) -> None:
        self._flake("delete")
        await self.inner.delete(key)

    async def delete_many(self, keys: Iterable[str]) -> None:
        self._flake("delete_many")
        await self.inner.delete_many(keys)

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        async for info in self.inner.list(prefix):
            yield info

    async def close(self) -> None:
        return None


async def test_transient_store_errors_are_retried(stubs: Stubs) -> None:
    oracle = Oracle()
    await _upload(stubs, "u1", oracle)
    rt = stubs.services.runtime
    flaky = FlakyStore(rt.store)
    compactor = Compactor(rt.settings.replace(delete_grace_s=0.0), rt.pool, flaky, rt.registry)
    (outcome,) = await compactor.compact(CompactOptions(dataset_id="u1"))
    assert outcome.status is Status.COMPACTED
    # The next run deletes the replaced bundle, again through a failing first delete.
    (outcome,) = await compactor.compact(CompactOptions(dataset_id="u1"))
    assert outcome.status is Status.NOTHING_TO_DO
    assert flaky.failed == ["get_range", "put", "delete_many"]
    assert await stored(rt.store) == await registered(stubs.url, "active")
    await read_all(stubs, oracle, "u1", TABLE, READS, compacted=True)


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (compactor_pb2.CompactRequest(dataset_id="nope"), grpc.StatusCode.NOT_FOUND),
        (compactor_pb2.CompactRequest(dataset_id="u1", table="nope"), grpc.StatusCode.NOT_FOUND),
        (compactor_pb2.CompactRequest(table="battle"), grpc.StatusCode.INVALID_ARGUMENT),
        (compactor_pb2.CompactRequest(dataset_id="../u1"), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_bad_requests(
    stubs: Stubs, request_: compactor_pb2.CompactRequest, code: grpc.StatusCode
) -> None:
    await _upload(stubs, "u1", Oracle())
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.compactor.Compact(request_)
    assert err.value.code() == code, err.value.details()
    # A refused call leaves no claim behind.
    assert (await flags(stubs.url, "u1"))["compaction_in_progress"] is False


async def test_a_dataset_with_nothing_to_compact(stubs: Stubs) -> None:
    await ingest(stubs.ingest, Oracle(), "u1", TABLE, [battle(1)])
    answer = await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id="u1"))
    assert [(d.dataset_id, d.status) for d in answer.datasets] == [("u1", NOTHING_TO_DO)]
