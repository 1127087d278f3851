"""One behavioural contract, checked against every ObjectStore backend.

Tests that take ``backend``/``store`` run once per backend; the few backend-specific checks
(multipart ETags, pending uploads, temp files on disk) sit next to the contract they support.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from fusou.objectstore import (
    LocalObjectStore,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
    S3ObjectStore,
    TransientObjectStoreError,
    open_object_store,
)
from fusou.objectstore.base import MiB
from fusou.objectstore.s3 import _translate_error
from tests.objectstore.conftest import S3_LIST_PAGE_SIZE, S3_PART_SIZE, Backend
from tests.support.s3server import S3Server

pytestmark = pytest.mark.asyncio


def random_bytes(size: int, seed: int = 0) -> bytes:
    # Random rather than repeating bytes so that a misplaced part or range cannot look correct.
    return random.Random(seed).randbytes(size)


async def chunked(
    data: bytes, *, seed: int = 1, max_chunk: int = 96 * 1024
) -> AsyncIterator[bytes]:
    """``data`` as many small chunks of irregular size, none aligned with a part boundary."""
    rng = random.Random(seed)
    position = 0
    while position < len(data):
        size = rng.randint(1, max_chunk)
        yield data[position : position + size]
        position += size


class Boom(Exception):
    pass


async def failing_after(data: bytes, chunk: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]
    raise Boom("source failed mid-way")


async def collect(store: ObjectStore, prefix: str = "") -> list[ObjectInfo]:
    return [info async for info in store.list(prefix)]


async def keys(store: ObjectStore, prefix: str = "") -> list[str]:
    return [info.key for info in await collect(store, prefix)]


def assert_utc(info: ObjectInfo) -> None:
    assert info.last_modified.tzinfo is not None
    assert info.last_modified.utcoffset() == timedelta(0)


# --- put / get ------------------------------------------------------------------------------


async def test_put_get_roundtrip(store: ObjectStore) -> None:
    data = random_bytes(100_000)
    info = await store.put("raw/7/bundle.bin", data)

    assert info.key == "raw/7/bundle.bin"
    assert info.size == len(data)
    assert_utc(info)
    assert await store.get("raw/7/bundle.bin") == data
    # What put reports is what the store holds, not an estimate.
    assert await store.head("raw/7/bundle.bin") == info


async def test_put_replaces_existing_object(store: ObjectStore) -> None:
    await store.put("k", b"first version, longer than the second")
    info = await store.put("k", bytearray(b"second"))

    assert info.size == 6
    assert await store.get("k") == b"second"
    assert await keys(store) == ["k"]


async def test_put_accepts_memoryview_and_unusual_characters(store: ObjectStore) -> None:
    key = "cold/ds-1/table 1/ünïcödé+%20&=.avro"
    await store.put(key, memoryview(b"abcdef")[1:4])

    assert await store.get(key) == b"bcd"
    assert await keys(store) == [key]


async def test_streamed_put_of_many_small_chunks_spans_several_parts(backend: Backend) -> None:
    store = backend.store()
    data = random_bytes(11 * MiB, seed=2)

    info = await store.put("big/streamed.bin", chunked(data))

    assert info.size == len(data)
    assert (await store.head("big/streamed.bin")).size == len(data)
    assert await store.get("big/streamed.bin") == data
    if backend.is_s3:
        # A multipart ETag is "<md5 of part md5s>-<part count>": 5 + 5 + 1 MiB is three parts.
        assert backend.s3_etag("big/streamed.bin").strip('"').endswith("-3")
        assert backend.pending_multipart_uploads() == []


async def test_bytes_put_larger_than_a_part_uses_multipart(backend: Backend) -> None:
    store = backend.store()
    data = random_bytes(S3_PART_SIZE * 2 + 123, seed=3)

    await store.put("big/bytes.bin", data)

    assert await store.get("big/bytes.bin") == data
    if backend.is_s3:
        assert backend.s3_etag("big/bytes.bin").strip('"').endswith("-3")


async def test_put_of_exactly_one_part_is_a_single_request(backend: Backend) -> None:
    store = backend.store()
    data = random_bytes(S3_PART_SIZE, seed=4)

    await store.put("one-part.bin", chunked(data))

    assert await store.get("one-part.bin") == data
    if backend.is_s3:
        assert "-" not in backend.s3_etag("one-part.bin")


async def test_empty_object(store: ObjectStore) -> None:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""  # makes this an async generator

    from_bytes = await store.put("empty/bytes", b"")
    from_stream = await store.put("empty/stream", nothing())

    assert from_bytes.size == 0
    assert from_stream.size == 0
    for key in ("empty/bytes", "empty/stream"):
        assert await store.get(key) == b""
        assert (await store.head(key)).size == 0
        assert await store.get_range(key, 0, 10) == b""
    assert [(i.key, i.size) for i in await collect(store)] == [
        ("empty/bytes", 0),
        ("empty/stream", 0),
    ]


# --- ranged reads ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "length"),
    [
        (0, 10),  # start
        (4000, 1234),  # middle
        (9990, 10),  # exactly the end
        (9995, 100),  # runs past the end: what exists
        (10_000, 5),  # starts at the end
        (50_000, 5),  # starts far past the end
        (0, 10_000),  # everything
        (123, 0),  # nothing
        (5000, 2**40),  # "the rest", asked for with a huge length
    ],
)
async def test_get_range(store: ObjectStore, offset: int, length: int) -> None:
    data = random_bytes(10_000, seed=5)
    await store.put("ranged", data)

    assert await store.get_range("ranged", offset, length) == data[offset : offset + length]


async def test_get_range_rejects_negative_values(store: ObjectStore) -> None:
    await store.put("ranged", b"0123456789")

    with pytest.raises(ValueError):
        await store.get_range("ranged", -1, 5)
    with pytest.raises(ValueError):
        await store.get_range("ranged", 0, -5)


async def test_get_ranges_returns_each_range_in_order(store: ObjectStore) -> None:
    data = random_bytes(50_000, seed=6)
    await store.put("blocks.avro", data)
    ranges = [(40_000, 5000), (0, 100), (100, 39_900), (49_990, 100), (60_000, 1), (7, 0), (0, 100)]

    parts = await store.get_ranges("blocks.avro", ranges)

    assert parts == [data[o : o + n] for o, n in ranges]
    assert await store.get_ranges("blocks.avro", []) == []


# --- missing keys and deletes ---------------------------------------------------------------


async def test_missing_key_raises_object_not_found(store: ObjectStore) -> None:
    # A key that is only a "directory" of other keys is missing too, on every backend.
    await store.put("dir/child", b"x")

    for key in ("nope", "dir", "dir/child/deeper"):
        with pytest.raises(ObjectNotFound) as raised:
            await store.get(key)
        assert raised.value.key == key
        with pytest.raises(ObjectNotFound):
            await store.get_range(key, 0, 10)
        with pytest.raises(ObjectNotFound):
            await store.get_range(key, 0, 0)
        with pytest.raises(ObjectNotFound):
            await store.get_ranges(key, [(0, 1), (1, 1)])
        with pytest.raises(ObjectNotFound):
            await store.head(key)


async def test_delete_is_idempotent(store: ObjectStore) -> None:
    await store.put("gone/soon", b"data")
    await store.put("gone/stays", b"data")

    await store.delete("gone/soon")
    await store.delete("gone/soon")
    await store.delete("never/existed")

    with pytest.raises(ObjectNotFound):
        await store.head("gone/soon")
    assert await keys(store) == ["gone/stays"]


async def test_delete_many(store: ObjectStore) -> None:
    for name in ("a", "b", "c", "d", "e"):
        await store.put(f"many/{name}", name.encode())

    await store.delete_many(["many/a", "many/c", "many/missing", "many/e", "many/a"])
    await store.delete_many([])

    assert await keys(store) == ["many/b", "many/d"]
    assert await store.get("many/d") == b"d"


async def test_delete_many_validates_every_key_before_deleting_any(store: ObjectStore) -> None:
    await store.put("keep/one", b"1")

    with pytest.raises(ValueError):
        await store.delete_many(["keep/one", "../escape"])

    assert await keys(store) == ["keep/one"]


# --- listing --------------------------------------------------------------------------------

LISTED = {
    "raw/1/x.bin": b"x" * 3,
    "raw/1/y.bin": b"y" * 1,
    "raw/10/z.bin": b"z" * 7,
    "raw/2/w.bin": b"w" * 2,
    "a-c": b"",
    "a/b": b"bb",
    "a0": b"0",
    "cold/ds/t/part.avro": b"avro",
}


async def test_list_is_sorted_by_whole_key_and_filtered_by_string_prefix(backend: Backend) -> None:
    store = backend.store()
    # Insert in an order unrelated to the expected one.
    for key in sorted(LISTED, key=lambda k: k[::-1]):
        await store.put(key, LISTED[key])

    everything = await collect(store)
    assert [i.key for i in everything] == sorted(LISTED)  # '-' < '/' < '0': "a-c", "a/b", "a0"
    assert {i.key: i.size for i in everything} == {k: len(v) for k, v in LISTED.items()}
    for info in everything:
        assert_utc(info)

    assert await keys(store, "raw/1") == ["raw/1/x.bin", "raw/1/y.bin", "raw/10/z.bin"]
    assert await keys(store, "raw/1/") == ["raw/1/x.bin", "raw/1/y.bin"]
    assert await keys(store, "raw/1/x") == ["raw/1/x.bin"]
    assert await keys(store, "a") == ["a-c", "a/b", "a0"]
    assert await keys(store, "cold/ds/t/part.avro") == ["cold/ds/t/part.avro"]
    assert await keys(store, "raw/3") == []
    assert await keys(store, "nothing/here/") == []


async def test_list_follows_every_page(backend: Backend) -> None:
    store = backend.store()
    expected = [f"paged/{i:03d}" for i in range(7)]
    for key in reversed(expected):
        await store.put(key, b"p")
    await store.put("paged-not/x", b"q")

    requests = 0
    if backend.is_s3:
        assert isinstance(store, S3ObjectStore)

        def count(**_: Any) -> None:
            nonlocal requests
            requests += 1

        # The store's own client, to count what it sends; there is no public hook for that.
        client = await store._get_client()  # noqa: SLF001
        client.meta.events.register("before-call.s3.ListObjectsV2", count)

    assert await keys(store, "paged/") == expected
    if backend.is_s3:
        # Seven keys in pages of two: the listing really did span several requests.
        assert requests == -(-len(expected) // S3_LIST_PAGE_SIZE)


async def test_list_stops_cleanly_when_abandoned(store: ObjectStore) -> None:
    for i in range(5):
        await store.put(f"early/{i}", b"e")

    listing = store.list("early/")
    first = await anext(listing)
    # Both backends implement list as an async generator, which callers may close early.
    assert isinstance(listing, AsyncGenerator)
    await listing.aclose()

    assert first.key == "early/0"
    assert len(await keys(store, "early/")) == 5


# --- key validation -------------------------------------------------------------------------

INVALID_KEYS = ["", "/abs", "a/../b", "..", "../x", "a\\b", "a\x00b", "a//b", "a/", "./a", "a/./b"]


@pytest.mark.parametrize("key", INVALID_KEYS)
async def test_invalid_keys_are_rejected(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        await store.put(key, b"data")
    with pytest.raises(ValueError):
        await store.get(key)
    with pytest.raises(ValueError):
        await store.get_range(key, 0, 1)
    with pytest.raises(ValueError):
        await store.get_ranges(key, [(0, 1)])
    with pytest.raises(ValueError):
        await store.head(key)
    with pytest.raises(ValueError):
        await store.delete(key)
    with pytest.raises(ValueError):
        await store.delete_many([key])
    assert await keys(store) == []


async def test_temp_file_suffix_is_reserved(store: ObjectStore) -> None:
    with pytest.raises(ValueError):
        await store.put("x/name.fusou-tmp", b"data")


@pytest.mark.parametrize("prefix", ["/abs", "../", "a/../", "a\\", "a\x00", "a//", "./a"])
async def test_invalid_list_prefixes_are_rejected(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(ValueError):
        await collect(store, prefix)


# --- failed writes --------------------------------------------------------------------------


async def test_failed_streaming_put_leaves_nothing_behind(backend: Backend) -> None:
    store = backend.store()
    # More than one part, so on S3 a multipart upload is under way when the source fails.
    with pytest.raises(Boom):
        await store.put("failed/after-a-part.bin", failing_after(random_bytes(S3_PART_SIZE + MiB)))
    with pytest.raises(Boom):
        await store.put("failed/small.bin", failing_after(b"tiny"))

    for key in ("failed/after-a-part.bin", "failed/small.bin"):
        with pytest.raises(ObjectNotFound):
            await store.head(key)
    assert await keys(store) == []
    if backend.is_s3:
        assert backend.pending_multipart_uploads() == []
    else:
        assert backend.files_on_disk() == []


async def test_failed_put_keeps_the_previous_object(backend: Backend) -> None:
    store = backend.store()
    await store.put("kept.bin", b"original")

    with pytest.raises(Boom):
        await store.put("kept.bin", failing_after(random_bytes(S3_PART_SIZE + MiB)))

    assert await store.get("kept.bin") == b"original"
    if backend.is_s3:
        assert backend.pending_multipart_uploads() == []
    else:
        assert backend.files_on_disk() == ["kept.bin"]


async def test_local_listing_skips_leftover_temp_files(backend: Backend) -> None:
    if backend.is_s3:
        pytest.skip("only the local backend writes temp files")
    store = backend.store()
    await store.put("dir/real", b"real")
    # What a writer killed between creating and renaming its temp file leaves behind.
    (backend.root / "dir" / ".real.0123abcd.fusou-tmp").write_bytes(b"partial")

    assert await keys(store) == ["dir/real"]
    assert await store.get("dir/real") == b"real"


def leave_incomplete_write(backend: Backend, key: str, *, age_s: float) -> None:
    """What a writer of ``key`` killed mid-put leaves behind, last written ``age_s`` ago: a
    temp file (local) or a multipart upload with one part (S3)."""
    if backend.is_s3:
        client = backend.s3.client()
        upload = client.create_multipart_upload(Bucket=backend.bucket, Key=key)
        client.upload_part(
            Bucket=backend.bucket,
            Key=key,
            UploadId=upload["UploadId"],
            PartNumber=1,
            Body=b"partial",
        )
        return
    directory, _, name = key.rpartition("/")
    temp = backend.root / directory / f".{name}.{random.Random(key).randbytes(8).hex()}.fusou-tmp"
    temp.parent.mkdir(parents=True, exist_ok=True)
    temp.write_bytes(b"partial")
    then = time.time() - age_s
    os.utime(temp, (then, then))


def incomplete_writes(backend: Backend) -> list[str]:
    if backend.is_s3:
        return sorted(backend.pending_multipart_uploads())
    return [path for path in backend.files_on_disk() if path.endswith(".fusou-tmp")]


async def test_sweep_incomplete_deletes_old_leftovers_under_the_prefix(backend: Backend) -> None:
    store = backend.store()
    await store.put("dir/real", b"real")
    for key in ("dir/old", "dir-2/old", "other/old"):
        leave_incomplete_write(backend, key, age_s=7200.0)
    if backend.is_s3:
        # moto dates every upload 2010-11-10 (a constant of its responses) and a test cannot
        # date one otherwise: here "fresh" means "started after a horizon before that day".
        horizon = datetime(2020, 1, 1, tzinfo=UTC)
        assert await store.sweep_incomplete(datetime(2001, 1, 1, tzinfo=UTC)) == 0
    else:
        horizon = datetime.now(UTC) - timedelta(hours=1)
        leave_incomplete_write(backend, "dir/fresh", age_s=0.0)
    before = incomplete_writes(backend)

    # "dir/" is a key prefix: "dir-2/old" is not under it.
    assert await store.sweep_incomplete(horizon, "dir/") == 1
    after = incomplete_writes(backend)
    assert len(after) == len(before) - 1
    assert not any(w.startswith("dir/") and "old" in w for w in after)
    assert any(w.startswith("dir-2/") for w in after) and any(w.startswith("other/") for w in after)
    assert await store.sweep_incomplete(horizon) == 2
    if backend.is_s3:
        assert incomplete_writes(backend) == []
    else:
        # A temp file written since the horizon is a put that may still be under way.
        (fresh,) = incomplete_writes(backend)
        assert fresh.startswith("dir/.fresh.")
    assert await keys(store) == ["dir/real"]
    assert await store.get("dir/real") == b"real"


async def test_a_put_whose_leftovers_are_swept_fails_and_writes_nothing(backend: Backend) -> None:
    """The sweep's race with a put that stalled past the horizon: the put fails, whole."""
    store = backend.store()
    resume = asyncio.Event()

    async def stalling() -> AsyncIterator[bytes]:
        # More than a part, so on S3 a multipart upload is under way during the stall.
        yield random_bytes(S3_PART_SIZE + 1)
        await resume.wait()
        yield b"rest"

    put = asyncio.create_task(store.put("stalled.bin", stalling()))
    try:
        for _ in range(600):
            if incomplete_writes(backend) or put.done():
                break
            await asyncio.sleep(0.05)
        assert incomplete_writes(backend), "the put never started writing"
        assert await store.sweep_incomplete(datetime.now(UTC) + timedelta(minutes=5)) == 1
    finally:
        resume.set()
    with pytest.raises(ObjectStoreError):
        await put
    with pytest.raises(ObjectNotFound):
        await store.head("stalled.bin")
    assert incomplete_writes(backend) == []


async def test_local_key_cannot_be_both_object_and_directory(backend: Backend) -> None:
    if backend.is_s3:
        pytest.skip("S3 keys have no such constraint")
    store = backend.store()
    await store.put("a/b", b"1")
    await store.put("c", b"2")

    with pytest.raises(ObjectStoreError):
        await store.put("a", b"x")
    with pytest.raises(ObjectStoreError):
        await store.put("c/d", b"x")
    assert await keys(store) == ["a/b", "c"]
    assert backend.files_on_disk() == ["a/b", "c"]


# --- isolation ------------------------------------------------------------------------------


async def test_store_prefixes_isolate_stores(backend: Backend) -> None:
    # "tenant" is a string prefix of "tenant-2": only a '/'-terminated prefix keeps them apart.
    first = backend.store("tenant")
    second = backend.store("tenant-2")
    whole = backend.store()

    await first.put("k", b"first")
    await second.put("k", b"second")
    await second.put("only-second", b"2")

    assert await first.get("k") == b"first"
    assert await second.get("k") == b"second"
    assert await keys(first) == ["k"]
    assert await keys(second) == ["k", "only-second"]
    with pytest.raises(ObjectNotFound):
        await first.get("only-second")
    assert await keys(whole) == ["tenant-2/k", "tenant-2/only-second", "tenant/k"]

    await first.delete("k")
    assert await second.get("k") == b"second"


# --- lifecycle ------------------------------------------------------------------------------


async def test_closed_store_refuses_work(backend: Backend) -> None:
    async with backend.store() as store:
        await store.put("k", b"v")

    with pytest.raises(ObjectStoreError):
        await store.get("k")
    with pytest.raises(ObjectStoreError):
        await store.put("k", b"v")
    await store.close()  # idempotent


async def test_concurrent_operations_share_one_store(store: ObjectStore) -> None:
    import asyncio

    payloads = {f"c/{i:02d}": random_bytes(10_000 + i, seed=i) for i in range(24)}

    await asyncio.gather(*(store.put(k, v) for k, v in payloads.items()))
    read = await asyncio.gather(*(store.get(k) for k in payloads))

    assert dict(zip(payloads, read, strict=True)) == payloads


# --- factory --------------------------------------------------------------------------------


async def test_factory_parses_s3_urls() -> None:
    store = open_object_store("s3://my-bucket/some/prefix/", endpoint_url="http://x:1", region="eu")
    bare = open_object_store("s3://my-bucket")

    assert isinstance(store, S3ObjectStore)
    assert (store.bucket, store.prefix) == ("my-bucket", "some/prefix/")
    assert isinstance(bare, S3ObjectStore)
    assert (bare.bucket, bare.prefix) == ("my-bucket", "")
    await store.close()
    await bare.close()


async def test_factory_parses_file_urls(tmp_path: Path) -> None:
    store = open_object_store(f"file://{tmp_path}/with%20space")
    on_localhost = open_object_store(f"file://localhost{tmp_path}")

    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / "with space"
    assert isinstance(on_localhost, LocalObjectStore)
    assert on_localhost.root == tmp_path


@pytest.mark.parametrize(
    "url",
    [
        "",
        "/plain/path",
        "relative/path",
        "http://example.com/bucket",
        "s3://",
        "s3:///prefix-without-bucket",
        "s3://bucket/a/../b",
        "s3://bucket/prefix?versionId=1",
        "file://relative",
        "file:relative/path",
        "file://otherhost/tmp/x",
        "gs://bucket/prefix",
    ],
)
async def test_factory_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_object_store(url)


@pytest.mark.integration
async def test_factory_stores_work(s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    s3 = open_object_store(
        f"s3://{bucket}/pre", endpoint_url=s3_server.endpoint_url, region=s3_server.region
    )
    local = open_object_store(f"file://{tmp_path}/objects")

    async with s3, local:
        for store in (s3, local):
            await store.put("x/y", b"payload")
            assert await store.get("x/y") == b"payload"
    keys_in_bucket = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in keys_in_bucket] == ["pre/x/y"]
    assert (tmp_path / "objects" / "x" / "y").read_bytes() == b"payload"


# --- S3 error mapping -----------------------------------------------------------------------


def client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("NoSuchKey", 404), ObjectNotFound),
        (client_error("404", 404), ObjectNotFound),
        (client_error("SlowDown", 503), TransientObjectStoreError),
        (client_error("InternalError", 500), TransientObjectStoreError),
        (client_error("503", 503), TransientObjectStoreError),
        (client_error("RequestTimeout", 400), TransientObjectStoreError),
        # The store refuses this service: not transient, but no bug either (UNAVAILABLE).
        (client_error("AccessDenied", 403), ObjectStoreUnavailable),
        (client_error("NoSuchBucket", 404), ObjectStoreUnavailable),
        (EndpointConnectionError(endpoint_url="http://x"), TransientObjectStoreError),
    ],
)
async def test_s3_errors_map_to_store_errors(error: Exception, expected: type[Exception]) -> None:
    translated = _translate_error(error, "some/key")

    assert type(translated) is expected


@pytest.mark.integration
async def test_s3_unreachable_endpoint_is_transient(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # s3_server is requested for the dummy credentials it puts in the environment: without any,
    # botocore fails before connecting. AWS_MAX_ATTEMPTS=1 stops it retrying with backoff.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more, so the connection is refused immediately.
    async with S3ObjectStore("b", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1") as s:
        with pytest.raises(TransientObjectStoreError):
            await s.get("k")


@pytest.mark.integration
async def test_s3_missing_bucket_is_not_object_not_found(s3_server: S3Server) -> None:
    async with S3ObjectStore(
        "fusou-no-such-bucket", endpoint_url=s3_server.endpoint_url, region=s3_server.region
    ) as store:
        with pytest.raises(ObjectStoreError) as raised:
            await store.put("k", b"v")
    assert not isinstance(raised.value, ObjectNotFound | TransientObjectStoreError)


async def test_s3_rejects_parts_smaller_than_s3_allows() -> None:
    with pytest.raises(ValueError):
        S3ObjectStore("bucket", part_size=MiB)


async def test_check_passes_on_a_usable_store(store: ObjectStore) -> None:
    await store.check()
    await store.put("a/b", b"x")
    await store.check()


async def test_check_fails_where_objects_cannot_be_stored(backend: Backend) -> None:
    if backend.is_s3:
        missing = S3ObjectStore(
            "no-such-bucket-for-fusou",
            endpoint_url=backend.s3.endpoint_url,
            region=backend.s3.region,
        )
        try:
            with pytest.raises(ObjectStoreError):
                await missing.check()
        finally:
            await missing.close()
    else:
        backend.root.parent.mkdir(parents=True, exist_ok=True)
        backend.root.write_bytes(b"a file where the root should be")
        with pytest.raises(ObjectStoreError, match="not a directory"):
            await backend.store().check()
