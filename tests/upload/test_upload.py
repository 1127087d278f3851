"""UploadRaw: a bundle of Parquet fragments is stored, registered and read back like any other
data; a bad bundle is refused with the fragment named, and leaves nothing behind."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusou.api.compactor.v1 import compactor_pb2
from fusou.api.ingest.upload_requests import Part, upload_requests
from fusou.api.ingest.v1 import ingest_pb2
from fusou.config import Settings
from tests.ingest.helpers import snapshot, violation_fields
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import (
    DAY0,
    MINUTE,
    Oracle,
    check_arrow,
    check_json,
    ingest,
    read,
    read_request,
)
from tests.support.s3server import S3Server, running_s3_server
from tests.upload.helpers import (
    catalog_counts,
    first_seqs,
    parquet_bytes,
    stored_files,
    upload,
)

pytestmark = pytest.mark.integration

DS = "u1"


def row(i: int, **changes: Any) -> dict[str, Any]:
    return {"timestamp": DAY0 + i * MINUTE, "api_no": i, "ship": f"s{i % 5}", **changes}


async def check_reads(stubs: Stubs, oracle: Oracle, table: str) -> None:
    for start, end in (
        (DAY0 - MINUTE, DAY0 + 1000 * MINUTE),
        (DAY0 + 3 * MINUTE, DAY0 + 11 * MINUTE),
    ):
        answer = await read(stubs.reader, read_request(DS, table, start, end))
        check_arrow(answer, oracle, start, end)
    start, end = DAY0 - MINUTE, DAY0 + 1000 * MINUTE
    check_json(
        await read(stubs.reader, read_request(DS, table, start, end, json_rows=True)),
        oracle,
        start,
        end,
    )


async def test_a_bundle_is_stored_registered_and_read_like_ingested_rows(stubs: Stubs) -> None:
    oracles = {"battle": Oracle(), "sortie": Oracle()}
    battle_a = [row(i) for i in range(20)]
    sortie = [{"timestamp": DAY0 + i, "fleet": i % 3, "ok": i % 2 == 0} for i in range(9)]
    battle_b = [row(i, hp=i / 4) for i in range(20, 35)]
    answer = await upload(
        stubs.ingest,
        stubs.url,
        DS,
        [("battle", battle_a), ("sortie", sortie), ("battle", battle_b)],
        oracles,
        chunk_bytes=333,  # fragments begin and end inside chunks
    )
    assert answer.object_key.startswith(f"raw/{DS}/") and answer.object_key.endswith(".bin")
    assert [(f.table, f.rows) for f in answer.fragments] == [
        ("battle", 20),
        ("sortie", 9),
        ("battle", 15),
    ]
    assert answer.fragments[0].min_time.ToMilliseconds() == DAY0
    assert answer.fragments[0].max_time.ToMilliseconds() == DAY0 + 19 * MINUTE
    assert not answer.replayed

    conn = await asyncpg.connect(stubs.url)
    try:
        files = await conn.fetch(
            "SELECT f.format, f.byte_offset, f.byte_length, f.row_count, f.first_seq, "
            "(SELECT count(*) FROM fusou_blocks b WHERE b.file_id = f.file_id) AS blocks "
            "FROM fusou_files f ORDER BY f.byte_offset"
        )
        flagged = await conn.fetchval(
            "SELECT compaction_needed FROM fusou_datasets WHERE dataset_id = $1", DS
        )
        size = await conn.fetchval("SELECT size_bytes FROM fusou_objects")
    finally:
        await conn.close()
    assert [f["format"] for f in files] == ["parquet"] * 3
    # Row groups of 7 rows are the block index: one ranged GET each.
    assert [f["blocks"] for f in files] == [3, 2, 3]
    # Consecutive seq ranges, one per fragment, in bundle order.
    assert files[1]["first_seq"] == files[0]["first_seq"] + 20
    assert files[2]["first_seq"] == files[1]["first_seq"] + 9
    assert files[2]["byte_offset"] + files[2]["byte_length"] == size == answer.bytes_stored
    assert flagged is True

    await check_reads(stubs, oracles["battle"], "battle")
    await check_reads(stubs, oracles["sortie"], "sortie")


async def test_a_retried_upload_is_answered_with_the_first_answer(stubs: Stubs) -> None:
    oracles = {"battle": Oracle()}
    rows = [row(i) for i in range(10)]
    first = await upload(stubs.ingest, stubs.url, DS, [("battle", rows)], oracles, request_id="r1")
    again = await upload(stubs.ingest, stubs.url, DS, [("battle", rows)], oracles, request_id="r1")
    assert again.replayed and again.object_key == first.object_key
    assert list(again.fragments) == list(first.fragments)
    counts = await catalog_counts(stubs.url)
    assert counts["fusou_objects"] == 1 and counts["fusou_files"] == 1
    await check_reads(stubs, oracles["battle"], "battle")


async def test_uploads_and_ingest_share_one_schema_and_one_dedup_rule(stubs: Stubs) -> None:
    oracle = Oracle()
    await ingest(stubs.ingest, oracle, DS, "battle", [row(i) for i in range(10)])
    # Adds a field, widens api_no to double, and repeats rows 2..5 (the upload's copies win).
    later = [row(i, api_no=i + 0.5 if i % 2 else i, hp=1.5) for i in range(2, 6)]
    await upload(stubs.ingest, stubs.url, DS, [("battle", later)], {"battle": oracle})
    # Ingested again after the upload: whole-record duplicates of uploaded rows, newer seqs.
    await ingest(stubs.ingest, oracle, DS, "battle", [later[0], later[3]], arrow=True)
    info = await stubs.ingest.DeclareTable(
        ingest_pb2.DeclareTableRequest(dataset_id=DS, table="battle")
    )
    assert info.schema_version == 2 and not info.created
    await check_reads(stubs, oracle, "battle")


# -- bad bundles ----------------------------------------------------------------------------------

GOOD = parquet_bytes([row(i) for i in range(5)])


def manifest(*fragments: tuple[str, int, int], total: int) -> ingest_pb2.UploadRawRequest:
    return ingest_pb2.UploadRawRequest(
        manifest=ingest_pb2.RawManifest(
            dataset_id=DS,
            fragments=[
                ingest_pb2.RawFragment(table=t, offset=o, length=n) for t, o, n in fragments
            ],
            total_length=total,
        )
    )


def chunk(data: bytes) -> ingest_pb2.UploadRawRequest:
    return ingest_pb2.UploadRawRequest(chunk=data)


def bundle(*parts: tuple[str, bytes]) -> list[ingest_pb2.UploadRawRequest]:
    offset, fragments = 0, []
    for table, data in parts:
        fragments.append((table, offset, len(data)))
        offset += len(data)
    body = b"".join(d for _, d in parts)
    return [manifest(*fragments, total=offset), chunk(body[:50]), chunk(body[50:])]


BAD_BUNDLES: dict[str, tuple[Callable[[], list[ingest_pb2.UploadRawRequest]], str]] = {
    "overlapping fragments": (
        lambda: [manifest(("battle", 0, 100), ("battle", 60, 100), total=160), chunk(b"x" * 160)],
        "manifest.fragments[1]",
    ),
    "a fragment past the end": (
        lambda: [manifest(("battle", 0, 200), total=100), chunk(b"x" * 100)],
        "manifest.fragments[0]",
    ),
    "an empty fragment": (
        lambda: [manifest(("battle", 0, 0), total=10), chunk(b"x" * 10)],
        "manifest.fragments[0].length",
    ),
    "a bad table name": (
        lambda: bundle(("../battle", GOOD)),
        "manifest.fragments[0].table",
    ),
    "not Parquet": (lambda: bundle(("battle", b"not parquet at all" * 10)), "fragments[0]"),
    "a truncated Parquet file": (
        lambda: bundle(("battle", GOOD[:-30] + GOOD[-4:])),
        "fragments[0]",
    ),
    "the second fragment is not Parquet": (
        lambda: bundle(("battle", GOOD), ("battle", b"PAR1" + b"\0" * 40 + b"PAR1")),
        "fragments[1]",
    ),
    "shorter than the manifest says": (
        lambda: [manifest(("battle", 0, len(GOOD)), total=len(GOOD) + 10), chunk(GOOD)],
        "manifest.total_length",
    ),
    "longer than the manifest says": (
        lambda: [manifest(("battle", 0, len(GOOD)), total=len(GOOD)), chunk(GOOD + b"extra")],
        "chunk",
    ),
    "no time field": (
        lambda: bundle(("battle", parquet_bytes([{"api_no": 1}]))),
        "fragments[0].timestamp",
    ),
    "a null time": (
        lambda: bundle(("battle", parquet_bytes([row(1), {"timestamp": None, "api_no": 2}]))),
        "fragments[0].timestamp",
    ),
    "a reserved column": (
        lambda: bundle(("battle", parquet_bytes([row(1, _fusou_seq=5)]))),
        "fragments[0]._fusou_seq",
    ),
    "fragments that disagree on a type": (
        lambda: bundle(("battle", GOOD), ("battle", parquet_bytes([row(1, ship=7)]))),
        "fragments[1].ship",
    ),
    "the manifest is not first": (lambda: [chunk(GOOD)], "manifest"),
    "two manifests": (
        lambda: [*bundle(("battle", GOOD)), manifest(("battle", 0, 1), total=1)],
        "manifest",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
async def test_a_bad_bundle_is_refused_and_stores_nothing(
    stubs: Stubs, settings_objects: Path, case: str
) -> None:
    build, field = BAD_BUNDLES[case]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.ingest.UploadRaw(iter(build()))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert field in violation_fields(err.value), (violation_fields(err.value), err.value.details())
    assert stored_files(settings_objects) == []
    assert await catalog_counts(stubs.url) == {
        "fusou_objects": 0,
        "fusou_files": 0,
        "fusou_blocks": 0,
        "fusou_upload_requests": 0,
    }


async def test_a_refusal_reaches_a_client_still_sending(stubs: Stubs) -> None:
    """The manifest is refused at once while the client still has 16 MiB to send: the client
    gets the refusal, not grpc's INTERNAL for a write into a finished call."""
    total = 256 * 65536
    messages = [
        manifest(("battle", 0, total), ("battle", 10, 100), total=total),
        *(chunk(b"x" * 65536) for _ in range(256)),
    ]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.ingest.UploadRaw(iter(messages))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert "manifest.fragments[1]" in violation_fields(err.value)


async def test_a_fragment_conflicting_with_the_table_is_refused(
    stubs: Stubs, settings_objects: Path
) -> None:
    await ingest(stubs.ingest, Oracle(), DS, "battle", [row(1)])
    conflicting = parquet_bytes(pa.table({"timestamp": [DAY0], "ship": [3]}))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.ingest.UploadRaw(iter(bundle(("battle", GOOD), ("battle", conflicting))))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation_fields(err.value) == ["fragments[1].ship"]
    assert stored_files(settings_objects) == []
    assert (await catalog_counts(stubs.url))["fusou_files"] == 0


async def test_rows_with_only_a_time_field_make_version_one(stubs: Stubs) -> None:
    oracles = {"pings": Oracle(), "ticks": Oracle()}
    await upload(
        stubs.ingest,
        stubs.url,
        DS,
        [("pings", [{"timestamp": DAY0 + i} for i in range(5)])],
        oracles,
    )
    await ingest(stubs.ingest, oracles["ticks"], DS, "ticks", [{"timestamp": DAY0 + 1}])
    for table, oracle in oracles.items():
        info = await stubs.ingest.DeclareTable(
            ingest_pb2.DeclareTableRequest(dataset_id=DS, table=table)
        )
        assert info.schema_version == 1
        await check_reads(stubs, oracle, table)


def _with_empty_row_groups(rows: list[dict[str, Any]]) -> bytes:
    """A file whose row groups are [empty, 2 rows, empty, the rest]."""
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, table.schema) as writer:
        writer.write_table(table.slice(0, 0))
        writer.write_table(table.slice(0, 2))
        writer.write_table(table.slice(2, 0))
        writer.write_table(table.slice(2))
    return sink.getvalue()


async def test_empty_row_groups_are_skipped_and_the_rest_read(stubs: Stubs) -> None:
    oracle = Oracle()
    rows = [row(i) for i in range(7)]
    answer = await stubs.ingest.UploadRaw(
        upload_requests(DS, [Part("battle", _with_empty_row_groups(rows))])
    )
    assert answer.fragments[0].rows == 7
    (first,) = await first_seqs(stubs.url, answer.object_key)
    oracle.keep_rows(first, rows, arrow=True)
    await check_reads(stubs, oracle, "battle")
    # Compaction reads the file whole; reads agree before and after.
    await stubs.compactor.Compact(compactor_pb2.CompactRequest(dataset_id=DS))
    await check_reads(stubs, oracle, "battle")


async def test_uploads_naming_tables_in_opposite_orders_do_not_deadlock(stubs: Stubs) -> None:
    oracles = {"a": Oracle(), "b": Oracle()}
    # Each upload adds a field to both tables, so each locks both tables' rows.
    bundles = [
        [(t, [row(10 * n + i, **{f"f{n}": i}) for i in range(3)]) for t in order]
        for n, order in enumerate([("a", "b"), ("b", "a")] * 3)
    ]
    answers = await asyncio.gather(
        *(upload(stubs.ingest, stubs.url, DS, bundle, oracles) for bundle in bundles)
    )
    assert all(not a.replayed for a in answers)
    for table, oracle in oracles.items():
        await check_reads(stubs, oracle, table)


# -- limits at the door (issue 13), on the local store and on S3 ---------------------------------

FAR_PAST = -1_000_000_000_000_000
FAR_FUTURE = 1_000_000_000_000_000


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


LIMIT_BUNDLES: dict[str, tuple[Callable[[], list[ingest_pb2.UploadRawRequest]], str, str]] = {
    "a time before year 1": (
        lambda: bundle(
            ("battle", GOOD), ("battle", parquet_bytes([row(1), row(2, timestamp=FAR_PAST)]))
        ),
        "fragments[1].timestamp",
        "row 1 is -1000000000000000",
    ),
    "a time after year 9999": (
        lambda: bundle(("battle", parquet_bytes([row(1, timestamp=FAR_FUTURE)]))),
        "fragments[0].timestamp",
        "row 0 is 1000000000000000",
    ),
    "a Parquet timestamp after year 9999": (
        lambda: bundle(
            (
                "battle",
                parquet_bytes(pa.table({"timestamp": pa.array([FAR_FUTURE], pa.timestamp("ms"))})),
            )
        ),
        "fragments[0].timestamp",
        "outside the accepted times",
    ),
    "too many columns": (
        lambda: bundle(
            (
                "battle",
                parquet_bytes(
                    pa.table({"timestamp": [DAY0], **{f"c{i}": [i] for i in range(1000)}})
                ),
            )
        ),
        "fragments[0]",
        "has 1001 fields, over the limit of 1000",
    ),
    "a column nested too deep": (
        lambda: bundle(
            ("battle", parquet_bytes(pa.table({"timestamp": [DAY0], "deep": [_deep(17)]})))
        ),
        "fragments[0].deep",
        "17 levels deep, over the limit of 16",
    ),
    "a row over the size limit": (
        lambda: bundle(
            ("battle", parquet_bytes([row(1, note="a"), row(2, note="x" * (1024 * 1024 + 1))]))
        ),
        "fragments[0]",
        "row 1 is",
    ),
}


async def _refused_and_nothing_stored(
    stubs: Stubs, stored: Callable[[], list[str]], case: str
) -> None:
    build, field, says = LIMIT_BUNDLES[case]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stubs.ingest.UploadRaw(iter(build()))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert violation_fields(err.value) == [field], err.value.details()
    assert says in (err.value.details() or "")
    assert stored() == []
    assert await catalog_counts(stubs.url) == {
        "fusou_objects": 0,
        "fusou_files": 0,
        "fusou_blocks": 0,
        "fusou_upload_requests": 0,
    }
    assert (await snapshot(stubs.url))["fusou_tables"] == []


@pytest.mark.parametrize("case", sorted(LIMIT_BUNDLES))
async def test_a_fragment_past_a_limit_is_refused_and_stores_nothing(
    stubs: Stubs, settings_objects: Path, case: str
) -> None:
    await _refused_and_nothing_stored(stubs, lambda: stored_files(settings_objects), case)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


@pytest.mark.parametrize("case", ["a time before year 1", "a time after year 9999"])
async def test_a_poison_time_is_refused_on_s3_and_stores_nothing(
    settings: Settings, s3: S3Server, case: str
) -> None:
    bucket = s3.new_bucket()
    client = s3.client()
    on_s3 = settings.replace(
        object_store_url=f"s3://{bucket}/root", s3_endpoint_url=s3.endpoint_url
    )

    def stored() -> list[str]:
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        return [o["Key"] for o in listed] + [u["Key"] for u in uploads]

    async with open_stubs(on_s3, **SMALL_BLOCKS) as stubs:
        await _refused_and_nothing_stored(stubs, stored, case)
        # A good bundle after it lands, on the same store.
        answer = await upload(
            stubs.ingest, stubs.url, DS, [("battle", [row(1)])], {"battle": Oracle()}
        )
        # The bundle, and the table it published to the lake (lake/, see tests/lake).
        keys = stored()
        assert [k for k in keys if not k.startswith("root/lake/")] == [f"root/{answer.object_key}"]
        assert any(k.startswith("root/lake/u1/battle/data/") for k in keys)


async def test_fragments_do_not_grow_a_table_past_the_field_limit(
    settings: Settings, settings_objects: Path
) -> None:
    async with open_stubs(settings, max_fields=6) as stubs:
        await ingest(stubs.ingest, Oracle(), DS, "battle", [row(1)])  # 3 fields
        before = await snapshot(stubs.url)
        # 5 fields, 4 of them new: 7 for the table.
        wider = parquet_bytes(
            pa.table({"timestamp": [DAY0], "a": [1], "b": [2], "c": [3], "d": [4]})
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stubs.ingest.UploadRaw(iter(bundle(("battle", GOOD), ("battle", wider))))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert violation_fields(err.value) == ["fragments[1].d"]
        assert "would be field 7 of the table, over the limit of 6" in (err.value.details() or "")
        assert stored_files(settings_objects) == []
        assert await snapshot(stubs.url) == before
