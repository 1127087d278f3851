"""The authorization matrix, end to end over TLS: every RPC against no token, an unknown token,
every role that may not call it, a token for other datasets, and the tokens that may."""

from __future__ import annotations

import io
import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fusou.api.archiver.v1 import archiver_pb2
from fusou.api.compactor.v1 import compactor_pb2
from fusou.api.ingest.v1 import ingest_pb2
from fusou.api.reader.v1 import reader_pb2
from fusou.api.structs import structs
from fusou.api.timestamps import timestamp_of_ms
from tests.auth.conftest import Clients, bearer, secret
from tests.support.grpcurl import FUSOU, GRPCURL, arun, clean_env
from tests.support.tls import TlsFiles, make_tls_files

T0 = 1_700_000_000_000
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
Metadata = tuple[tuple[str, str], ...]
Call = Callable[[Clients, str, Metadata], Awaitable[object]]
_ids = itertools.count()


def _parquet() -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"timestamp": [T0 + 5, T0 + 6], "hp": [1, 2]}), sink)
    return sink.getvalue()


async def ingest(c: Clients, dataset: str, md: Metadata) -> object:
    return await c.ingest.Ingest(
        ingest_pb2.IngestRequest(
            dataset_id=dataset,
            table="battle",
            request_id=f"r{next(_ids)}",
            rows=structs([{"timestamp": T0 + 1, "hp": 3}]),
        ),
        metadata=md,
    )


async def upload_raw(c: Clients, dataset: str, md: Metadata) -> object:
    data = _parquet()

    async def messages() -> AsyncIterator[ingest_pb2.UploadRawRequest]:
        yield ingest_pb2.UploadRawRequest(
            manifest=ingest_pb2.RawManifest(
                dataset_id=dataset,
                fragments=[ingest_pb2.RawFragment(table="battle", offset=0, length=len(data))],
                total_length=len(data),
            )
        )
        yield ingest_pb2.UploadRawRequest(chunk=data)

    return await c.ingest.UploadRaw(messages(), metadata=md)


async def declare_table(c: Clients, dataset: str, md: Metadata) -> object:
    return await c.ingest.DeclareTable(
        ingest_pb2.DeclareTableRequest(
            dataset_id=dataset, table="ships", time_field="seen_at", key_fields=["ship_id"]
        ),
        metadata=md,
    )


async def read_range(c: Clients, dataset: str, md: Metadata) -> object:
    request = reader_pb2.ReadRangeRequest(
        dataset_id=dataset,
        table="battle",
        start_time=timestamp_of_ms(T0),
        end_time=timestamp_of_ms(T0 + 100),
    )
    return [m async for m in c.reader.ReadRange(request, metadata=md)]


async def get_stats(c: Clients, dataset: str, md: Metadata) -> object:
    return await c.reader.GetStats(reader_pb2.GetStatsRequest(dataset_id=dataset), metadata=md)


async def archive(c: Clients, dataset: str, md: Metadata) -> object:
    return await c.archiver.Archive(
        archiver_pb2.ArchiveRequest(dataset_id=dataset, min_age_seconds=0), metadata=md
    )


async def purge_dataset(c: Clients, dataset: str, md: Metadata) -> object:
    return await c.archiver.PurgeDataset(
        archiver_pb2.PurgeDatasetRequest(dataset_id=dataset), metadata=md
    )


async def delete_rows(c: Clients, dataset: str, md: Metadata) -> object:
    return await c.archiver.DeleteRows(
        archiver_pb2.DeleteRowsRequest(
            dataset_id=dataset,
            table="battle",
            start_time=timestamp_of_ms(T0),
            end_time=timestamp_of_ms(T0 + 1),
        ),
        metadata=md,
    )


async def enforce_retention(c: Clients, dataset: str, md: Metadata) -> object:
    return await c.archiver.EnforceRetention(
        archiver_pb2.EnforceRetentionRequest(dataset_id=dataset), metadata=md
    )


async def compact(c: Clients, dataset: str, md: Metadata) -> object:
    return await c.compactor.Compact(compactor_pb2.CompactRequest(dataset_id=dataset), metadata=md)


# RPC -> (call, roles that may call it, whether an empty dataset_id means every dataset)
RPCS: dict[str, tuple[Call, set[str], bool]] = {
    "Ingest": (ingest, {"ingest", "admin"}, False),
    "UploadRaw": (upload_raw, {"ingest", "admin"}, False),
    "DeclareTable": (declare_table, {"ingest", "admin"}, False),
    "ReadRange": (read_range, {"read", "admin"}, False),
    "GetStats": (get_stats, {"admin"}, True),
    "Archive": (archive, {"admin"}, True),
    "PurgeDataset": (purge_dataset, {"admin"}, False),
    "DeleteRows": (delete_rows, {"admin"}, False),
    "EnforceRetention": (enforce_retention, {"admin"}, True),
    "Compact": (compact, {"admin"}, True),
}


async def code_of(call: Awaitable[object]) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_every_rpc_of_every_service_is_in_the_matrix() -> None:
    methods = {
        m.name
        for module in (ingest_pb2, archiver_pb2, compactor_pb2, reader_pb2)
        for s in module.DESCRIPTOR.services_by_name.values()
        for m in s.methods
    }
    assert methods == set(RPCS)


@pytest.mark.integration
@pytest.mark.parametrize("rpc", list(RPCS))
async def test_authorization_matrix(clients: Clients, rpc: str) -> None:
    call, roles, empty_means_all = RPCS[rpc]
    # Data for the calls that read it, written by a token that may.
    assert await code_of(ingest(clients, "demo", bearer("ingest-demo"))) == grpc.StatusCode.OK

    # Without a usable token.
    assert await code_of(call(clients, "demo", ())) == UNAUTHENTICATED
    assert await code_of(call(clients, "demo", (("authorization", "Bearer nope"),))) == (
        UNAUTHENTICATED
    )
    assert await code_of(call(clients, "demo", (("authorization", secret("admin-all")),))) == (
        UNAUTHENTICATED
    ), "a token without the Bearer scheme"

    # A role that may not call it, on its own dataset.
    for role in {"ingest", "read", "admin"} - roles:
        assert await code_of(call(clients, "demo", bearer(f"{role}-demo"))) == DENIED, role

    # A role that may, outside its datasets; then inside them.
    for role in roles:
        assert await code_of(call(clients, "other", bearer(f"{role}-demo"))) == DENIED, role
        assert await code_of(call(clients, "demo", bearer(f"{role}-demo"))) == (
            grpc.StatusCode.OK
        ), role
    assert await code_of(call(clients, "other", bearer("admin-all"))) in (
        grpc.StatusCode.OK,
        grpc.StatusCode.NOT_FOUND,  # ReadRange of a table that "other" never had
    )

    if empty_means_all:
        # Every dataset at once needs a token for every dataset.
        assert await code_of(call(clients, "", bearer("admin-demo"))) == DENIED
        assert await code_of(call(clients, "", bearer("admin-all"))) == grpc.StatusCode.OK
    elif "ingest" in roles:
        # Patterns, and a token holding two roles.
        assert await code_of(call(clients, "team-a", bearer("writer-team"))) == grpc.StatusCode.OK
        assert await code_of(call(clients, "teams", bearer("writer-team"))) == DENIED
        assert await code_of(call(clients, "demo", bearer("reader-writer-demo"))) == (
            grpc.StatusCode.OK
        )
    elif "read" in roles:
        assert await code_of(call(clients, "demo", bearer("reader-writer-demo"))) == (
            grpc.StatusCode.OK
        )


@pytest.mark.integration
async def test_refused_calls_change_nothing(clients: Clients) -> None:
    for rpc in ("Ingest", "UploadRaw", "DeclareTable"):
        call = RPCS[rpc][0]
        assert await code_of(call(clients, "other", bearer("ingest-demo"))) == DENIED
        assert await code_of(call(clients, "other", ())) == UNAUTHENTICATED
        assert await code_of(call(clients, "other", bearer("read-demo"))) == DENIED
    stats = await clients.reader.GetStats(
        reader_pb2.GetStatsRequest(dataset_id="other"), metadata=bearer("admin-all")
    )
    assert list(stats.tables) == []
    pool = clients.services.runtime.pool
    for table in ("fusou_buffer", "fusou_tables", "fusou_objects", "fusou_files"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table


@pytest.mark.integration
async def test_messages_say_what_is_missing(clients: Clients) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await archive(clients, "demo", ())
    assert "authorization: Bearer" in (refused.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await archive(clients, "demo", bearer("ingest-demo"))
    details = refused.value.details() or ""
    assert "'ingest-demo'" in details and "admin" in details
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ingest(clients, "other", bearer("ingest-demo"))
    assert "'other'" in (refused.value.details() or "")


@pytest.mark.integration
async def test_health_and_reflection_stay_open(clients: Clients) -> None:
    health = health_pb2_grpc.HealthStub(clients.channel)
    for service in ("", "readiness", "fusou.ingest.v1.IngestService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(clients.channel)

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    answers = [a async for a in reflection.ServerReflectionInfo(ask())]
    names = {s.name for s in answers[0].list_services_response.service}
    assert "fusou.archiver.v1.ArchiverService" in names
    # Reflection v1 too (its messages are v1alpha's, under another method path).
    v1 = clients.channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    answers = [a async for a in v1(ask())]
    names = {s.name for s in answers[0].list_services_response.service}
    assert "fusou.archiver.v1.ArchiverService" in names


@pytest.mark.integration
async def test_a_plaintext_client_cannot_talk_to_the_tls_port(clients: Clients) -> None:
    async with grpc.aio.insecure_channel(clients.services.target) as plain:
        health = health_pb2_grpc.HealthStub(plain)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.integration
async def test_a_client_that_does_not_trust_the_certificate_is_refused(
    clients: Clients, tmp_path: Path
) -> None:
    stranger = make_tls_files(tmp_path / "stranger")
    credentials = grpc.ssl_channel_credentials(root_certificates=stranger.ca_pem)
    async with grpc.aio.secure_channel(clients.services.target, credentials) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=5
            )
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.integration
async def test_the_cli_and_grpcurl_with_a_token_over_tls(clients: Clients, tls: TlsFiles) -> None:
    target = f"localhost:{clients.services.server.port}"
    admin = clean_env(
        FUSOU_TARGET=target, FUSOU_TARGET_CA_FILE=str(tls.ca), FUSOU_TOKEN=secret("admin-all")
    )
    assert (await ingest(clients, "demo", bearer("ingest-demo"))) is not None
    done = await arun([FUSOU, "archive", "--dataset", "demo", "--min-age-seconds", "0"], env=admin)
    assert done.returncode == 0, done.explain()
    assert json.loads(done.stdout)["total_rows"] == "1"
    done = await arun([FUSOU, "stats", "--dataset", "demo"], env=admin)
    assert done.returncode == 0, done.explain()

    reader = {**admin, "FUSOU_TOKEN": secret("read-demo")}
    done = await arun([FUSOU, "stats"], env=reader)
    assert done.returncode == 1 and "PERMISSION_DENIED" in done.stderr, done.explain()
    anonymous = {k: v for k, v in admin.items() if k != "FUSOU_TOKEN"}
    done = await arun([FUSOU, "compact", "--dataset", "demo"], env=anonymous)
    assert done.returncode == 1 and "UNAUTHENTICATED" in done.stderr, done.explain()

    # grpcurl as the README shows it: -cacert and an authorization header.
    read = {
        "dataset_id": "demo",
        "table": "battle",
        "start_time": "2023-11-14T22:13:20Z",
        "end_time": "2023-11-14T22:13:21Z",
    }
    command = [
        GRPCURL,
        "-cacert",
        str(tls.ca),
        "-H",
        f"authorization: Bearer {secret('read-demo')}",
    ]
    done = await arun(
        [*command, "-d", json.dumps(read), target, "fusou.reader.v1.ReaderService/ReadRange"]
    )
    assert done.returncode == 0, done.explain()
    assert '"hp": 3' in done.stdout
    done = await arun([GRPCURL, "-cacert", str(tls.ca), target, "list"])
    assert done.returncode == 0 and "fusou.reader.v1.ReaderService" in done.stdout, done.explain()
