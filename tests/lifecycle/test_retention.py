"""Retention: declared with DeclareTable and changed by declaring again; EnforceRetention
deletes what is older, as DeleteRows would, and reads equal the oracle through archive,
upload and compaction."""

from __future__ import annotations

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2

from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.ingest.v1 import ingest_pb2
from tests.compact.oracle import compact_until_done
from tests.lifecycle.conftest import SOME_READS
from tests.read.conftest import Stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.read.test_equivalence import battle, minute, read_all
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS = "r1"


def duration(ms: int) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromMilliseconds(ms)
    return d


async def declare(
    stubs: Stubs, table: str, retention_ms: int | None
) -> ingest_pb2.DeclareTableResponse:
    request = ingest_pb2.DeclareTableRequest(dataset_id=DS, table=table)
    if retention_ms is not None:
        request.retention.CopyFrom(duration(retention_ms))
    answer: ingest_pb2.DeclareTableResponse = await stubs.ingest.DeclareTable(request)
    return answer


async def enforce(
    stubs: Stubs, oracle: Oracle, **request: str
) -> archiver_pb2.TableRetentionResult:
    """EnforceRetention for the one table with a retention, applied to the oracle too."""
    answer = await stubs.archiver.EnforceRetention(archiver_pb2.EnforceRetentionRequest(**request))
    (result,) = answer.tables
    assert not result.error and answer.failed_tables == 0
    if result.deletion_id:
        cutoff = result.cutoff.ToMilliseconds()
        oracle.rows = [r for r in oracle.rows if r.record[oracle.time_field] >= cutoff]
    return result


async def test_retention_deletes_what_is_older_and_follows_its_changes(stubs: Stubs) -> None:
    clock = stubs.services.clock
    oracle = Oracle()
    # Rows of minutes 0 to 59; a retention whose cutoff falls near minute 30.
    keep_ms = clock.now_ms() - minute(30) + 30_000
    declared = await declare(stubs, "battle", keep_ms)
    assert declared.created and declared.retention.ToMilliseconds() == keep_ms
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i) for i in range(0, 40)])
    await archive(stubs.archiver, clock, DS, "battle")
    await upload(
        stubs.ingest,
        stubs.url,
        DS,
        [("battle", [battle(i) for i in range(40, 50)])],
        {"battle": oracle},
    )
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i) for i in range(50, 60)])
    await read_all(stubs, oracle, DS, "battle", SOME_READS)

    # archive() moved the clock a minute on: the cutoff is now near minute 31.
    first = await enforce(stubs, oracle)
    assert first.deletion_id and first.retention.ToMilliseconds() == keep_ms
    assert minute(30) < first.cutoff.ToMilliseconds() < minute(32)
    assert first.hot_rows_deleted == 0  # the old rows were archived
    await read_all(stubs, oracle, DS, "battle", SOME_READS)
    # Again at once: the deletion already reaches the cutoff.
    again = await enforce(stubs, oracle)
    assert again.deletion_id == 0

    # Shorter: rows up to about minute 51 go, hot ones at once.
    shorter = keep_ms - 20 * 60_000
    assert (await declare(stubs, "battle", shorter)).retention.ToMilliseconds() == shorter
    second = await enforce(stubs, oracle, dataset_id=DS, table="battle")
    assert second.deletion_id and second.hot_rows_deleted > 0
    await read_all(stubs, oracle, DS, "battle", SOME_READS)

    # Archive and compaction make it physical and forget the deletions.
    await archive(stubs.archiver, clock, DS, "battle")
    await compact_until_done(stubs.compactor, DS)
    await read_all(stubs, oracle, DS, "battle", SOME_READS, compacted=True)
    conn = await asyncpg.connect(stubs.url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM fusou_deletions") == 0
        # Every stored row is one the retention keeps.
        oldest = await conn.fetchval("SELECT min(min_time) FROM fusou_files WHERE state = 'active'")
        assert oldest is not None and oldest >= second.cutoff.ToMilliseconds()
    finally:
        await conn.close()
    # The archive moved the clock on a minute: a row more is old; then nothing is.
    await enforce(stubs, oracle)
    await compact_until_done(stubs.compactor, DS)
    await read_all(stubs, oracle, DS, "battle", SOME_READS, compacted=True)
    assert (await enforce(stubs, oracle)).deletion_id == 0

    # Zero keeps rows for ever; declaring without a retention leaves it as it is.
    assert not (await declare(stubs, "battle", 0)).HasField("retention")
    assert not (await declare(stubs, "battle", None)).HasField("retention")
    answer = await stubs.archiver.EnforceRetention(archiver_pb2.EnforceRetentionRequest())
    assert list(answer.tables) == []


async def test_bad_retention_requests_change_nothing(stubs: Stubs) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as negative:
        await declare(stubs, "battle", -1000)
    assert negative.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "retention" in (negative.value.details() or "")
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, "battle", [battle(i) for i in range(5)])
    for request in (
        archiver_pb2.EnforceRetentionRequest(dataset_id="nope"),
        archiver_pb2.EnforceRetentionRequest(dataset_id=DS, table="nope"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stubs.archiver.EnforceRetention(request)
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    for request in (
        archiver_pb2.EnforceRetentionRequest(dataset_id="../x"),
        archiver_pb2.EnforceRetentionRequest(table="battle"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stubs.archiver.EnforceRetention(request)
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # A table without a retention, named: reported, nothing deleted.
    answer = await stubs.archiver.EnforceRetention(
        archiver_pb2.EnforceRetentionRequest(dataset_id=DS, table="battle")
    )
    (result,) = answer.tables
    assert not result.HasField("retention") and result.deletion_id == 0
    await read_all(stubs, oracle, DS, "battle", SOME_READS)
