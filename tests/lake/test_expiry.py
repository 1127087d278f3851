"""Old snapshots stay readable for the grace period after they stop being current, however old
they are themselves: an engine that planned against the previous snapshot of a table quiet for
longer than the grace period can still read it."""

from __future__ import annotations

import asyncio

import pytest

from fusou.api.archiver.v1 import archiver_pb2
from fusou.config import Settings
from fusou.objectstore.base import ObjectNotFound
from tests.lake.helpers import assert_lake_is_readrange, lake_table
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, ingest
from tests.read.test_equivalence import battle

pytestmark = pytest.mark.integration

DS, TABLE = "u1", "battle"
GRACE_S = 2.0


async def _archive(stubs: Stubs) -> None:
    """Archive without moving the services' clock: here FUSOU's clock, pyiceberg's and the
    store's must agree, as they do in production."""
    await asyncio.sleep(0.01)  # rows of this very millisecond are not yet older than 0 s
    answer = await stubs.archiver.Archive(
        archiver_pb2.ArchiveRequest(dataset_id=DS, min_age_seconds=0)
    )
    assert answer.total_rows > 0 and answer.lake_tables_published == 1, answer


async def test_the_snapshot_a_commit_replaces_outlives_the_commit_by_the_grace(
    settings: Settings,
) -> None:
    async with open_stubs(settings, **SMALL_BLOCKS, delete_grace_s=GRACE_S) as stubs:
        rt = stubs.services.runtime
        await ingest(stubs.ingest, Oracle(), DS, TABLE, [battle(i) for i in range(20)])
        await _archive(stubs)
        before = lake_table(rt.settings, DS, TABLE)
        planned = before.current_snapshot()
        assert planned is not None
        files = [t.file.file_path for t in before.scan().plan_files()]
        # Quiet for longer than the grace, on the clocks pyiceberg and the store date things by.
        await asyncio.sleep(GRACE_S + 0.5)
        await ingest(stubs.ingest, Oracle(), DS, TABLE, [battle(i) for i in range(20, 30)])
        await _archive(stubs)
        after = lake_table(rt.settings, DS, TABLE)
        # The snapshot an engine planned against a moment ago is still there, whole.
        assert planned.snapshot_id in {s.snapshot_id for s in after.snapshots()}
        assert after.scan(snapshot_id=planned.snapshot_id).to_arrow().num_rows == 20
        prefix = rt.settings.store.url.rstrip("/") + "/"  # type: ignore[union-attr]
        for path in files:
            try:
                await rt.store.head(path.removeprefix(prefix))
            except ObjectNotFound:
                raise AssertionError(f"{path}, named by the previous snapshot, is gone") from None
        assert await assert_lake_is_readrange(stubs, rt.settings, DS, TABLE) == 30
