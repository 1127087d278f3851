"""Ingest end to end: a real server, a real PostgreSQL, the buffer inspected afterwards."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import asyncpg
import grpc
import numpy as np
import pyarrow as pa
import pytest
from google.protobuf import struct_pb2

from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.api.structs import structs
from fusou.config import Settings
from fusou.records.batch import batch_from_arrow
from fusou.records.dedup import dedup_keys
from fusou.records.wire_formats import arrow_ipc_bytes as arrow_ipc
from fusou.testing import ServicesUnderTest, running_services
from tests.ingest.helpers import buffer_rows, request, snapshot

T0 = 1_700_000_000_000


def battle(i: int, **extra: Any) -> dict[str, Any]:
    return {"timestamp": T0 + i * 1000, "api_no": i, "hp": 40 + i % 7, "ship": f"s{i % 5}", **extra}


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> ingest_pb2_grpc.IngestServiceAsyncStub:
    return ingest_pb2_grpc.IngestServiceStub(channel)


@pytest.mark.integration
async def test_rows_land_in_the_buffer_committed_and_decodable(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    rows = [battle(i) for i in range(10)]
    resp = await stub.Ingest(request("u1", "battle", rows))
    assert resp.rows_written == 10 and resp.schema_version == 1 and not resp.replayed
    assert resp.last_seq - resp.first_seq == 9
    # The answer came after commit: another connection sees every row at once.
    stored = await buffer_rows(database_url, "u1", "battle")
    assert [r["seq"] for r in stored] == list(range(resp.first_seq, resp.last_seq + 1))
    assert [r["decoded"] for r in stored] == rows
    assert [r["event_time"] for r in stored] == [r["timestamp"] for r in rows]
    assert all(r["schema_version"] == 1 for r in stored)
    # The stored dedup key is the one rule's key of the record.
    batch = batch_from_arrow(pa.Table.from_pylist(rows), "timestamp")
    expected = dedup_keys(batch.table, batch.types)
    assert [bytes(r["dedup_key"]) for r in stored] == [bytes(k) for k in expected]


@pytest.mark.integration
async def test_arrow_ipc_and_struct_rows_store_the_same_records(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    rows = [battle(i) for i in range(50)]
    await stub.Ingest(request("u1", "a", rows))
    table = pa.Table.from_pylist(rows)
    resp = await stub.Ingest(
        ingest_pb2.IngestRequest(dataset_id="u1", table="b", arrow_ipc=arrow_ipc(table))
    )
    assert resp.rows_written == 50
    a = await buffer_rows(database_url, "u1", "a")
    b = await buffer_rows(database_url, "u1", "b")
    assert [r["decoded"] for r in a] == [r["decoded"] for r in b] == rows
    assert [bytes(r["dedup_key"]) for r in a] == [bytes(r["dedup_key"]) for r in b]


@pytest.mark.integration
async def test_a_retried_request_id_is_answered_with_the_first_answer(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    first = await stub.Ingest(request("u1", "battle", [battle(i) for i in range(5)], "req-1"))
    again = await stub.Ingest(request("u1", "battle", [battle(i) for i in range(5)], "req-1"))
    assert again.replayed and not first.replayed
    assert (again.rows_written, again.first_seq, again.last_seq, again.schema_version) == (
        first.rows_written,
        first.first_seq,
        first.last_seq,
        first.schema_version,
    )
    # Even a retry whose body differs writes nothing: the id decides.
    other = await stub.Ingest(request("u1", "battle", [battle(99)], "req-1"))
    assert other.replayed and other.first_seq == first.first_seq
    assert len(await buffer_rows(database_url, "u1", "battle")) == 5
    # The same id in another dataset is another request.
    elsewhere = await stub.Ingest(request("u2", "battle", [battle(1)], "req-1"))
    assert not elsewhere.replayed


@pytest.mark.integration
async def test_concurrent_retries_of_one_request_write_once(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    rows = [battle(i) for i in range(20)]
    answers = await asyncio.gather(
        *(stub.Ingest(request("u1", "battle", rows, "dup")) for _ in range(12))
    )
    assert sum(not a.replayed for a in answers) == 1
    assert len({(a.first_seq, a.last_seq) for a in answers}) == 1
    assert len(await buffer_rows(database_url, "u1", "battle")) == 20


@pytest.mark.integration
async def test_schema_evolves_by_adding_and_widening_and_rejects_conflicts(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    r1 = await stub.Ingest(request("u1", "t", [{"timestamp": 1, "a": 1}]))
    r2 = await stub.Ingest(request("u1", "t", [{"timestamp": 2, "a": 2}]))
    r3 = await stub.Ingest(request("u1", "t", [{"timestamp": 3, "a": 2.5, "b": "new"}]))
    r4 = await stub.Ingest(request("u1", "t", [{"timestamp": 4, "a": 7}]))
    assert [r1.schema_version, r2.schema_version, r3.schema_version, r4.schema_version] == [
        1,
        1,
        2,
        2,
    ]
    before = await snapshot(database_url)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Ingest(request("u1", "t", [{"timestamp": 5, "a": "text"}]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "a" in (err.value.details() or "")
    assert await snapshot(database_url) == before
    rows = await buffer_rows(database_url, "u1", "t")
    assert [r["decoded"] for r in rows] == [
        {"timestamp": 1, "a": 1},
        {"timestamp": 2, "a": 2},
        {"timestamp": 3, "a": 2.5, "b": "new"},
        {"timestamp": 4, "a": 7.0, "b": None},
    ]
    conn = await asyncpg.connect(database_url)
    try:
        versions = await conn.fetch("SELECT version FROM fusou_table_schemas ORDER BY version")
    finally:
        await conn.close()
    assert [v["version"] for v in versions] == [1, 2]


@pytest.mark.integration
async def test_conflicting_schema_changes_from_concurrent_clients(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    # Half the clients send x as a number, half as a string: whichever type lands first wins,
    # and every request of the other kind is rejected; nothing half-written either way.
    async def send(i: int) -> str:
        value: Any = i if i % 2 else f"s{i}"
        try:
            await stub.Ingest(request("u1", "race", [{"timestamp": i, "x": value}]))
            return "ok-num" if i % 2 else "ok-str"
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
            return "rejected"

    outcomes = await asyncio.gather(*(send(i) for i in range(20)))
    assert outcomes.count("rejected") == 10
    assert len({o for o in outcomes if o != "rejected"}) == 1
    assert len(await buffer_rows(database_url, "u1", "race")) == 10


@pytest.mark.integration
async def test_group_commit_under_concurrent_clients_keeps_every_row_once(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    clients, per_client, rows_per = 16, 15, 40

    async def client(c: int) -> list[ingest_pb2.IngestResponse]:
        answers = []
        for k in range(per_client):
            rows = [battle(i, client=c, k=k) for i in range(rows_per)]
            answers.append(await stub.Ingest(request("u1", "battle", rows, f"c{c}-{k}")))
        return answers

    results = [
        a for answers in await asyncio.gather(*(client(c) for c in range(clients))) for a in answers
    ]
    total = clients * per_client * rows_per
    assert sum(a.rows_written for a in results) == total
    ranges = sorted((a.first_seq, a.last_seq) for a in results)
    assert all(last - first == rows_per - 1 for first, last in ranges)
    assert all(b[0] > a[1] for a, b in itertools.pairwise(ranges))  # disjoint
    stored = await buffer_rows(database_url, "u1", "battle")
    assert len(stored) == total
    assert (
        len({(r["decoded"]["client"], r["decoded"]["k"], r["decoded"]["api_no"]) for r in stored})
        == total
    )
    # Each request's rows carry exactly the seqs its answer reported.
    by_seq = {r["seq"]: r["decoded"] for r in stored}
    for a in results:
        keys = {(by_seq[s]["client"], by_seq[s]["k"]) for s in range(a.first_seq, a.last_seq + 1)}
        assert len(keys) == 1
    conn = await asyncpg.connect(database_url)
    try:
        transactions = await conn.fetchval("SELECT count(DISTINCT xmin::text) FROM fusou_buffer")
    finally:
        await conn.close()
    # Requests shared transactions.
    assert transactions < clients * per_client


@pytest.mark.integration
async def test_declared_table_uses_its_time_and_key_fields(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    declared = await stub.DeclareTable(
        ingest_pb2.DeclareTableRequest(
            dataset_id="u1", table="ships", time_field="seen_at", key_fields=["ship_id"]
        )
    )
    assert declared.created and declared.schema_version == 0
    again = await stub.DeclareTable(
        ingest_pb2.DeclareTableRequest(
            dataset_id="u1", table="ships", time_field="seen_at", key_fields=["ship_id"]
        )
    )
    assert not again.created
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeclareTable(
            ingest_pb2.DeclareTableRequest(dataset_id="u1", table="ships", time_field="other")
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await stub.Ingest(
        request(
            "u1",
            "ships",
            [{"seen_at": 1, "ship_id": 7, "lv": 1}, {"seen_at": 2, "ship_id": 7, "lv": 2}],
        )
    )
    stored = await buffer_rows(database_url, "u1", "ships")
    assert [r["event_time"] for r in stored] == [1, 2]
    assert stored[0]["dedup_key"] == stored[1]["dedup_key"]  # same ship_id, same key
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.Ingest(request("u1", "ships", [{"timestamp": 1, "ship_id": 8}]))
    assert missing.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.integration
async def test_declared_avro_schema_becomes_version_one(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str
) -> None:
    import json

    schema = {
        "type": "record",
        "name": "battle",
        "fields": [
            {"name": "timestamp", "type": "long"},
            {"name": "hp", "type": ["null", "long"], "default": None},
        ],
    }
    resp = await stub.DeclareTable(
        ingest_pb2.DeclareTableRequest(
            dataset_id="u1", table="typed", avro_schema=json.dumps(schema)
        )
    )
    assert resp.schema_version == 1
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Ingest(request("u1", "typed", [{"timestamp": 1, "hp": "full"}]))
    ok = await stub.Ingest(request("u1", "typed", [{"timestamp": 1, "hp": 3}]))
    assert ok.schema_version == 1


@pytest.mark.integration
async def test_large_batch_through_arrow(
    stub: ingest_pb2_grpc.IngestServiceAsyncStub, database_url: str, services: ServicesUnderTest
) -> None:
    n = 20_000
    rng = np.random.default_rng(1)
    table = pa.table(
        {
            "timestamp": pa.array(T0 + np.arange(n) * 10, pa.int64()),
            "damage": pa.array(rng.integers(0, 10_000, n)),
            "note": pa.array([f"n{i}" if i % 3 else None for i in range(n)]),
        }
    )
    resp = await stub.Ingest(
        ingest_pb2.IngestRequest(dataset_id="u1", table="big", arrow_ipc=arrow_ipc(table))
    )
    assert resp.rows_written == n
    stored = await buffer_rows(database_url, "u1", "big")
    assert [r["decoded"] for r in stored] == table.to_pylist()


async def test_structs_helper_is_json_faithful() -> None:
    s = structs([{"a": 1, "b": [1, "x"], "c": {"d": None}}])[0]
    nested = s["c"]
    assert s["a"] == 1.0
    assert isinstance(nested, struct_pb2.Struct) and nested["d"] is None


@pytest.mark.integration
async def test_ingest_with_cpu_work_on_a_thread(settings: Settings, database_url: str) -> None:
    # FUSOU_CPU_WORKERS=0: the same results without worker processes.
    async with (
        running_services(settings.replace(cpu_workers=0)) as s,
        grpc.aio.insecure_channel(s.target) as ch,
    ):
        stub = ingest_pb2_grpc.IngestServiceStub(ch)
        resp = await stub.Ingest(request("u1", "battle", [battle(i) for i in range(30)], "t-1"))
        again = await stub.Ingest(request("u1", "battle", [battle(i) for i in range(30)], "t-1"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.Ingest(request("u1", "battle", [{"timestamp": "x"}]))
    assert resp.rows_written == 30 and again.replayed
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [r["decoded"] for r in await buffer_rows(database_url, "u1", "battle")] == [
        battle(i) for i in range(30)
    ]
