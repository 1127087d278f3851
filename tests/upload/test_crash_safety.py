"""UploadRaw under injected crashes: a bundle is either registered whole or not at all; what a
crash leaves in the store is an orphan, swept only after the grace period."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fusou.compact.compactor import CompactOptions, Compactor
from fusou.upload.uploader import Fragment, Manifest, RawUploader
from tests.archive.oracle import Crash, CrashAt, fetch
from tests.compact.oracle import registered, stored
from tests.read.conftest import Stubs
from tests.read.oracle import Oracle
from tests.read.test_equivalence import READS, battle, read_all
from tests.upload.helpers import parquet_bytes

pytestmark = pytest.mark.integration

DS = "u1"


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 100):
        yield data[start : start + 100]


@pytest.mark.parametrize("point", ["upload", "uploaded", "commit", "committed"])
async def test_crash_at_each_step_of_an_upload(stubs: Stubs, point: str) -> None:
    rt = stubs.services.runtime
    rows = [battle(i) for i in range(30)]
    data = parquet_bytes(rows)
    manifest = Manifest(DS, [Fragment("battle", 0, len(data))], len(data), request_id="r1")
    crash = CrashAt(point)
    uploader = RawUploader(rt.settings, rt.pool, rt.store, rt.registry, checkpoint=crash)
    with pytest.raises(Crash):
        await uploader.upload(manifest, _chunks(data))

    files = await fetch(stubs.url, "SELECT first_seq FROM fusou_files")
    keys = await stored(rt.store)
    if point == "committed":
        assert len(files) == 1 and keys == await registered(stubs.url)
    else:
        # Nothing registered, not even the request id: a retry uploads again.
        assert files == [] and await registered(stubs.url) == set()
        assert await fetch(stubs.url, "SELECT 1 FROM fusou_upload_requests") == []
        # The put was aborted mid-stream, or completed and is now an orphan.
        assert len(keys) == (0 if point == "upload" else 1)

    # The client retries with the same request id: stored once, read once.
    retry = RawUploader(rt.settings, rt.pool, rt.store, rt.registry)
    answer = await retry.upload(manifest, _chunks(data))
    assert answer.replayed == (point == "committed")
    oracle = Oracle()
    (first,) = [r["first_seq"] for r in await fetch(stubs.url, "SELECT first_seq FROM fusou_files")]
    oracle.keep_rows(first, rows, arrow=True)
    await read_all(stubs, oracle, DS, "battle", READS)

    # Orphans go once past the grace (the compactor's sweep); the registered bundle stays.
    sweeper = Compactor(rt.settings.replace(delete_grace_s=0.0), rt.pool, rt.store, rt.registry)
    await sweeper.compact(CompactOptions(dataset_id=DS))  # compacts, sweeps the orphan
    await sweeper.compact(CompactOptions(dataset_id=DS))  # deletes the retired bundle
    assert await stored(rt.store, ("raw/",)) == set()
    assert await stored(rt.store) == await registered(stubs.url, "active")
    await read_all(stubs, oracle, DS, "battle", READS, compacted=True)
