"""What writes killed mid-put leave in the object store (a local temp file, an S3 multipart
upload) is deleted by the scheduled runs once older than the grace period: every archive run
and every compaction run sweeps its datasets' keys, a run over every dataset the whole store.
A temp file younger than the grace may belong to a put still under way and stays."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fusou.api.compactor.v1 import compactor_pb2
from fusou.config import Settings
from fusou.objectstore.local import LocalObjectStore, _AtomicFile
from tests.compact.oracle import COMPACTED, compact_until_done
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.read.test_equivalence import READS, battle, read_all
from tests.support.s3server import S3Server, running_s3_server
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS, TABLE = "u1", "battle"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


def killed_write(store: LocalObjectStore, key: str, *, age_s: float) -> Path:
    """The temp file a put of ``key`` leaves when its process dies before the rename, made by
    the store's own writer, last written ``age_s`` ago."""
    path = store.root.joinpath(*key.split("/"))
    before = set(path.parent.glob("*.fusou-tmp")) if path.parent.is_dir() else set()
    writer = _AtomicFile(store.root, key, path)
    writer.write(b"half an object")
    # Neither commit nor abort: the process is gone, and its death closes the descriptor.
    writer._file.close()  # noqa: SLF001
    (temp,) = set(path.parent.glob("*.fusou-tmp")) - before
    then = time.time() - age_s
    os.utime(temp, (then, then))
    return temp


async def test_runs_delete_old_temp_files_of_killed_writes(stubs: Stubs) -> None:
    rt = stubs.services.runtime
    store = rt.store
    assert isinstance(store, LocalObjectStore)
    old = 2 * rt.settings.store.delete_grace_s
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, TABLE, [battle(i) for i in range(40)])
    cold = f"cold/{DS}/{TABLE}/date=2023-11-14"
    old_cold = killed_write(store, f"{cold}/{uuid.uuid4().hex}.avro", age_s=old)
    fresh_cold = killed_write(store, f"{cold}/{uuid.uuid4().hex}.avro", age_s=0)
    other_dataset = killed_write(store, f"raw/other/{uuid.uuid4().hex}.bin", age_s=old)

    # An archive run for the dataset sweeps the dataset's keys.
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    assert not old_cold.exists()
    assert fresh_cold.exists() and other_dataset.exists()

    # So does a compaction run for it.
    await upload(
        stubs.ingest, stubs.url, DS, [(TABLE, [battle(i) for i in range(30, 60)])], {TABLE: oracle}
    )
    old_raw = killed_write(store, f"raw/{DS}/{uuid.uuid4().hex}.bin", age_s=old)
    old_output = killed_write(
        store, f"optimized/{DS}/{TABLE}-{uuid.uuid4().hex}.parquet", age_s=old
    )
    results = await compact_until_done(stubs.compactor, DS)
    assert results[-1].status == COMPACTED
    assert not old_raw.exists() and not old_output.exists()
    assert fresh_cold.exists() and other_dataset.exists()

    # A scheduled run (every dataset) sweeps the whole store, with nothing else to do.
    answer = await stubs.compactor.Compact(compactor_pb2.CompactRequest())
    assert list(answer.datasets) == []
    assert not other_dataset.exists()
    assert fresh_cold.exists()
    await read_all(stubs, oracle, DS, TABLE, READS, compacted=True)


async def test_runs_abort_incomplete_multipart_uploads(settings: Settings, s3: S3Server) -> None:
    bucket = s3.new_bucket()
    s3_settings = settings.replace(
        object_store_url=f"s3://{bucket}/prefix", s3_endpoint_url=s3.endpoint_url
    )
    client = s3.client()

    def killed_upload(s3_key: str) -> None:
        created = client.create_multipart_upload(Bucket=bucket, Key=s3_key)
        client.upload_part(
            Bucket=bucket, Key=s3_key, UploadId=created["UploadId"], PartNumber=1, Body=b"part"
        )

    def pending() -> list[str]:
        return sorted(
            u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        )

    async with open_stubs(s3_settings, **SMALL_BLOCKS) as stubs:
        oracle = Oracle()
        await ingest(stubs.ingest, oracle, DS, TABLE, [battle(i) for i in range(40)])
        # Outside the store's prefix: not FUSOU's, never touched.
        foreign = f"elsewhere/raw/{DS}/{uuid.uuid4().hex}.bin"
        killed_upload(foreign)
        # moto dates every upload 2010-11-10, older than any grace: these count as old.
        killed_upload(f"prefix/cold/{DS}/{TABLE}/date=2023-11-14/{uuid.uuid4().hex}.avro")
        await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
        assert pending() == [foreign]

        await upload(
            stubs.ingest,
            stubs.url,
            DS,
            [(TABLE, [battle(i) for i in range(30, 60)])],
            {TABLE: oracle},
        )
        killed_upload(f"prefix/optimized/{DS}/{TABLE}-{uuid.uuid4().hex}.parquet")
        results = await compact_until_done(stubs.compactor, DS)
        assert results[-1].status == COMPACTED
        assert pending() == [foreign]
        await read_all(stubs, oracle, DS, TABLE, READS, compacted=True)
