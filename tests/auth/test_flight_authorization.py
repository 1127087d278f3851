"""Arrow Flight under the same tokens and TLS as the gRPC port: ReadRange's rule (roles read and
admin, the token's datasets) holds for DoGet and GetFlightInfo alike."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
from google.rpc import status_pb2
from pyarrow import flight

from fusou.api.reader.flight import read_flight_table
from fusou.api.reader.v1 import reader_pb2
from fusou.api.timestamps import timestamp_of_ms
from fusou.server.flight_status import flight_message
from tests.auth.conftest import Clients, bearer, secret
from tests.auth.test_authorization import T0, ingest
from tests.support.tls import TlsFiles, make_tls_files

pytestmark = pytest.mark.integration


def _request(dataset: str) -> reader_pb2.ReadRangeRequest:
    return reader_pb2.ReadRangeRequest(
        dataset_id=dataset,
        table="battle",
        start_time=timestamp_of_ms(T0),
        end_time=timestamp_of_ms(T0 + 100),
    )


def _options(token: str | None) -> flight.FlightCallOptions:
    headers = [] if token is None else [(b"authorization", token.encode())]
    return flight.FlightCallOptions(headers=headers, timeout=30)


def _client(clients: Clients, tls: TlsFiles) -> flight.FlightClient:
    port = clients.services.server.flight_port
    return flight.connect(f"grpc+tls://localhost:{port}", tls_root_certs=tls.ca_pem)


def _do_get(client: flight.FlightClient, dataset: str, token: str | None) -> pa.Table:
    return read_flight_table(client, _request(dataset), _options(token))[0]


def _get_flight_info(client: flight.FlightClient, dataset: str, token: str | None) -> pa.Schema:
    descriptor = flight.FlightDescriptor.for_command(_request(dataset).SerializeToString())
    return client.get_flight_info(descriptor, _options(token)).schema


Call = Callable[[flight.FlightClient, str, "str | None"], object]


async def _outcome(call: Call, client: flight.FlightClient, dataset: str, token: str | None) -> str:
    # The server answers on this test's event loop: the blocking client runs on a thread.
    try:
        await asyncio.to_thread(call, client, dataset, token)
    except flight.FlightUnauthenticatedError:
        return "UNAUTHENTICATED"
    except flight.FlightUnauthorizedError:
        return "PERMISSION_DENIED"
    except pa.ArrowKeyError:
        return "NOT_FOUND"
    return "OK"


@pytest.mark.parametrize("call", [_do_get, _get_flight_info], ids=["DoGet", "GetFlightInfo"])
async def test_flight_authorization_matrix(clients: Clients, tls: TlsFiles, call: Call) -> None:
    assert await ingest(clients, "demo", bearer("ingest-demo")) is not None
    client = _client(clients, tls)

    def token(name: str) -> str:
        return f"Bearer {secret(name)}"

    assert await _outcome(call, client, "demo", None) == "UNAUTHENTICATED"
    assert await _outcome(call, client, "demo", "Bearer nope") == "UNAUTHENTICATED"
    assert await _outcome(call, client, "demo", secret("admin-all")) == "UNAUTHENTICATED"
    assert await _outcome(call, client, "demo", token("ingest-demo")) == "PERMISSION_DENIED"
    for name in ("read-demo", "admin-demo", "reader-writer-demo"):
        assert await _outcome(call, client, "other", token(name)) == "PERMISSION_DENIED", name
        assert await _outcome(call, client, "demo", token(name)) == "OK", name
    assert await _outcome(call, client, "other", token("admin-all")) == "NOT_FOUND"


async def test_flight_answers_what_read_range_answers_to_the_same_token(
    clients: Clients, tls: TlsFiles
) -> None:
    await ingest(clients, "demo", bearer("ingest-demo"))
    request = _request("demo")
    request.format = reader_pb2.OUTPUT_FORMAT_ARROW_IPC
    messages = [m async for m in clients.reader.ReadRange(request, metadata=bearer("read-demo"))]
    expected = pa.concat_tables(
        pa.ipc.open_stream(m.arrow_ipc).read_all() for m in messages if m.arrow_ipc
    )
    table = await asyncio.to_thread(
        _do_get, _client(clients, tls), "demo", f"Bearer {secret('read-demo')}"
    )
    assert table.num_rows == 1
    assert table.equals(expected)


async def test_refusals_say_why_and_carry_the_status(clients: Clients, tls: TlsFiles) -> None:
    client = _client(clients, tls)
    with pytest.raises(flight.FlightUnauthenticatedError) as missing:
        await asyncio.to_thread(_do_get, client, "demo", None)
    assert "authorization: Bearer" in flight_message(missing.value)
    with pytest.raises(flight.FlightUnauthorizedError) as denied:
        await asyncio.to_thread(_do_get, client, "other", f"Bearer {secret('read-demo')}")
    assert flight_message(denied.value) == "token 'read-demo' may not touch dataset 'other'"
    # The google.rpc.Status the gRPC port would send, in the same trailer.
    status = status_pb2.Status.FromString(denied.value.extra_info)
    assert status.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert status.message == flight_message(denied.value)


async def test_flight_speaks_tls_only_to_clients_that_trust_it(
    clients: Clients, tls: TlsFiles, tmp_path: Path
) -> None:
    port = clients.services.server.flight_port
    token = f"Bearer {secret('read-demo')}"
    plain = flight.connect(f"grpc+tcp://localhost:{port}")
    with pytest.raises(flight.FlightUnavailableError):
        await asyncio.to_thread(_do_get, plain, "demo", token)
    stranger = make_tls_files(tmp_path / "stranger").ca_pem
    untrusting = flight.connect(f"grpc+tls://localhost:{port}", tls_root_certs=stranger)
    with pytest.raises(flight.FlightUnavailableError):
        await asyncio.to_thread(_do_get, untrusting, "demo", token)
