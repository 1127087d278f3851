"""Guarantee 4 under injected crashes: at every step of an archive run, buffer plus cold files
hold every ingested row exactly once; a rerun finishes the move; orphans go after the grace."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusou.archive.archiver import ArchiveOptions, Archiver
from fusou.config import Settings
from fusou.formats.avro_container import INGESTED_AT_FIELD, SEQ_FIELD
from fusou.objectstore import S3ObjectStore
from fusou.objectstore.base import MiB
from fusou.testing import running_services
from tests.archive.oracle import (
    T0,
    Crash,
    CrashAt,
    Hold,
    all_seqs,
    archive_settings,
    battle,
    blocks_per_file,
    buffer_seqs,
    cold_files,
    cold_rows,
    cold_seqs,
    exactly_once,
    ingest_batches,
    ingested_at_by_seq,
    orphan_keys,
    parked,
    read_avro,
    registered_keys,
    stored_keys,
    strip_metadata,
)
from tests.support.s3server import S3Server, running_s3_server

pytestmark = pytest.mark.integration

DATASET, TABLE = "u1", "battle"
# The smallest part S3 accepts.
S3_PART = 5 * MiB
# Four requests of 75 rows: 300 rows, several files of several blocks each.
BATCHES = [[battle(i) for i in range(k * 75, (k + 1) * 75)] for k in range(4)]


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


def _files_on_disk(settings: Settings) -> list[str]:
    """Every file under the local store's cold/ directory, temp files included."""
    assert settings.store.url is not None
    root = Path(settings.store.url.removeprefix("file://")) / "cold"
    return sorted(str(Path(d, f)) for d, _, files in os.walk(root) for f in files)


async def _crash_and_recover(settings: Settings, point: str, occurrence: int = 1) -> None:
    async with running_services(settings, ["ingest"]) as svc:
        rt = svc.runtime
        url = settings.database.url
        assert url is not None
        ingested = await ingest_batches(svc.target, DATASET, TABLE, BATCHES)
        assert len(ingested.seqs) == 300
        ingest_times = await ingested_at_by_seq(url)

        crash = CrashAt(point, occurrence)
        with pytest.raises(Crash):
            await Archiver(settings, rt.pool, rt.store, rt.registry, checkpoint=crash).archive(
                ArchiveOptions()
            )
        assert crash.seen.count(point) == occurrence

        # (a) Right after the crash: every row exactly once, in the old state or the new one.
        assert exactly_once(await all_seqs(url, rt.store), ingested.seqs) == []
        buffered = set(await buffer_seqs(url))
        cold = set(await cold_seqs(url, rt.store))
        committed_files = len(await cold_files(url, rt.store))
        if point == "committed":
            # The crash came after COMMIT: the file's rows moved.
            assert committed_files == occurrence
        else:
            # Rolled back (or never started): only earlier files' rows left the buffer.
            assert committed_files == occurrence - 1
        if committed_files == 0:
            assert buffered == ingested.seqs and not cold
        else:
            assert cold and buffered == ingested.seqs - cold

        # (c) What the crash left in the store.
        orphans = await orphan_keys(url, rt.store)
        if point in ("uploaded", "commit"):
            # The object went up but its registration never committed.
            assert len(orphans) == 1
            (orphan,) = orphans
            # A complete, readable file, but of rows the buffer still holds.
            data = await rt.store.get(orphan)
            orphan_seqs = {r[SEQ_FIELD] for r in read_avro(data)}
            assert orphan_seqs and orphan_seqs <= buffered
        else:
            assert orphans == set()
        if point == "upload":
            # The put was aborted mid-stream: not even a temp file is left.
            assert await stored_keys(rt.store) == await registered_keys(url)
            if settings.store.url and settings.store.url.startswith("file://"):
                assert len(_files_on_disk(settings)) == committed_files

        # The default grace keeps young orphans (they may belong to a run still committing).
        assert settings.store.delete_grace_s == 3600
        default = Archiver(settings, rt.pool, rt.store, rt.registry)
        assert await default.sweep_orphans() == 0
        assert await orphan_keys(url, rt.store) == orphans

        # (b) A rerun without faults finishes the move.
        report = await default.archive(ArchiveOptions())
        assert report.orphans_deleted == 0
        assert [(t.dataset_id, t.table) for t in report.tables] == [(DATASET, TABLE)]
        assert report.tables[0].rows == len(buffered)
        assert not report.tables[0].more_remaining
        assert await buffer_seqs(url) == []
        assert exactly_once(await all_seqs(url, rt.store), ingested.seqs) == []
        rows = await cold_rows(url, rt.store)
        assert {r[SEQ_FIELD]: strip_metadata(r) for r in rows} == ingested.by_seq
        assert {r[SEQ_FIELD]: r[INGESTED_AT_FIELD] for r in rows} == ingest_times
        # The scenario really made several files of several blocks.
        blocks = await blocks_per_file(url)
        assert len(blocks) >= 3 and max(blocks.values()) >= 2

        # Orphans go once past the grace, registered objects never.
        registered = await registered_keys(url)
        assert registered <= await stored_keys(rt.store)
        no_grace = Archiver(settings.replace(delete_grace_s=0.0), rt.pool, rt.store, rt.registry)
        assert await no_grace.sweep_orphans() == len(orphans)
        assert await stored_keys(rt.store) == registered
        for key in registered:
            await rt.store.head(key)  # raises ObjectNotFound if the sweep took it
        assert await no_grace.sweep_orphans() == 0
        # Nothing the sweep did changed what the files hold.
        assert exactly_once(await all_seqs(url, rt.store), ingested.seqs) == []


@pytest.mark.parametrize("point", ["upload", "uploaded", "commit", "committed"])
async def test_crash_at_each_step_local(settings: Settings, point: str) -> None:
    await _crash_and_recover(archive_settings(settings), point)


@pytest.mark.parametrize("point", ["uploaded", "committed"])
async def test_crash_in_a_later_file_local(settings: Settings, point: str) -> None:
    # Earlier files of the same run committed; only the crashed one is undone (or kept).
    await _crash_and_recover(archive_settings(settings), point, occurrence=2)


@pytest.mark.parametrize("point", ["upload", "uploaded", "commit", "committed"])
async def test_crash_at_each_step_s3(settings: Settings, s3: S3Server, point: str) -> None:
    bucket = s3.new_bucket()
    s3_settings = archive_settings(
        settings, object_store_url=f"s3://{bucket}/prefix", s3_endpoint_url=s3.endpoint_url
    )
    await _crash_and_recover(s3_settings, point)
    # Nothing half-uploaded stays behind in the bucket either.
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


async def test_crash_mid_multipart_upload_s3(settings: Settings, s3: S3Server) -> None:
    """A crash after some parts of a multipart upload went up: the upload is aborted (no object,
    no pending parts), the rows stay hot, and the rerun uploads the same file in parts."""
    bucket = s3.new_bucket()
    client = s3.client()
    s3_settings = archive_settings(
        settings,
        object_store_url=f"s3://{bucket}/prefix",
        s3_endpoint_url=s3.endpoint_url,
        archive_codec="null",
        archive_block_rows=500,
        archive_block_bytes=1024 * 1024,
        archive_max_file_bytes=64 * 1024 * 1024,
    )
    # About 6.5 MB of datums: more than one 5 MiB part, all of one day (a cold file holds one).
    batches = [
        [
            battle(i, payload=os.urandom(512).hex(), timestamp=T0 + i)
            for i in range(k * 2000, (k + 1) * 2000)
        ]
        for k in range(3)
    ]
    pending_at_crash: list[int] = []

    async def crash_once_multipart_started(name: str) -> None:
        if name != "upload" or pending_at_crash:
            return
        uploads = await asyncio.to_thread(client.list_multipart_uploads, Bucket=bucket)
        if uploads.get("Uploads"):
            pending_at_crash.append(len(uploads["Uploads"]))
            raise Crash("crash mid multipart upload")

    async with (
        running_services(s3_settings, ["ingest"]) as svc,
        S3ObjectStore(
            bucket, "prefix", endpoint_url=s3.endpoint_url, region=s3.region, part_size=S3_PART
        ) as store,
    ):
        rt = svc.runtime
        url = s3_settings.database.url
        assert url is not None
        ingested = await ingest_batches(svc.target, DATASET, TABLE, batches)

        archiver = Archiver(
            s3_settings, rt.pool, store, rt.registry, checkpoint=crash_once_multipart_started
        )
        with pytest.raises(Crash):
            await archiver.archive(ArchiveOptions())
        assert pending_at_crash == [1]
        assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
        assert await stored_keys(store) == set()
        assert set(await buffer_seqs(url)) == ingested.seqs

        # The rerun (same archiver, the hook now inert) sends the file in parts.
        report = await archiver.archive(ArchiveOptions())
        assert report.tables[0].rows == len(ingested.seqs) and report.tables[0].files == 1
        (key,) = await stored_keys(store)
        assert (await store.head(key)).size > S3_PART
        assert await buffer_seqs(url) == []
        rows = await cold_rows(url, store)
        assert exactly_once(Counter(r[SEQ_FIELD] for r in rows), ingested.seqs) == []
        assert {r[SEQ_FIELD]: strip_metadata(r) for r in rows} == ingested.by_seq


@pytest.mark.parametrize("point", ["upload", "uploaded", "commit", "committed"])
async def test_cancelled_run_at_each_step(settings: Settings, point: str) -> None:
    """A run cancelled while parked at a step (a client gone, a deadline, a shutdown) is like a
    crash there, and it leaves the table's lock free for the next run."""
    s = archive_settings(settings)
    async with running_services(s, ["ingest"]) as svc:
        rt = svc.runtime
        url = s.database.url
        assert url is not None
        ingested = await ingest_batches(svc.target, DATASET, TABLE, BATCHES)
        hold = Hold(point)
        run = Archiver(s, rt.pool, rt.store, rt.registry, checkpoint=hold)
        async with parked(run.archive(ArchiveOptions()), hold) as task:
            task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert exactly_once(await all_seqs(url, rt.store), ingested.seqs) == []
        moved = set(await cold_seqs(url, rt.store))
        assert bool(moved) == (point == "committed")
        assert len(await orphan_keys(url, rt.store)) == int(point in ("uploaded", "commit"))

        # The lock went with the cancelled run: a call naming the table is not refused.
        only = ArchiveOptions(dataset_id=DATASET, table=TABLE)
        report = await Archiver(s, rt.pool, rt.store, rt.registry).archive(only)
        assert report.tables[0].rows == len(ingested.seqs) - len(moved)
        assert await buffer_seqs(url) == []
        rows = await cold_rows(url, rt.store)
        assert exactly_once(Counter(r[SEQ_FIELD] for r in rows), ingested.seqs) == []
