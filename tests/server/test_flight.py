"""The Arrow Flight port: what it answers to requests it cannot serve (never UNKNOWN, never a
bug's traceback as the message), GetFlightInfo and DoGet agreeing, and its life with the
server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pyarrow as pa
import pytest
from pyarrow import flight

from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.api.reader.flight import read_flight, read_flight_table
from fusou.api.reader.v1 import reader_pb2
from fusou.api.structs import structs
from fusou.api.timestamps import timestamp_of_ms
from fusou.config import Settings
from fusou.server.flight_status import flight_message
from fusou.testing import ServicesUnderTest, running_services

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[ServicesUnderTest]:
    async with running_services(settings, ["ingest", "reader"]) as services:
        async with grpc.aio.insecure_channel(services.target) as channel:
            await ingest_pb2_grpc.IngestServiceStub(channel).Ingest(
                ingest_pb2.IngestRequest(
                    dataset_id="demo",
                    table="battle",
                    request_id="r1",
                    rows=structs(
                        [
                            {"timestamp": T0 + i, "hp": i, "ship": f"s{i % 3}", "gear": {"a": i}}
                            for i in range(10)
                        ]
                    ),
                )
            )
        yield services


def _client(services: ServicesUnderTest) -> flight.FlightClient:
    return flight.connect(f"grpc://{services.flight_target}")


def _request(**fields: object) -> reader_pb2.ReadRangeRequest:
    request = reader_pb2.ReadRangeRequest(
        dataset_id="demo",
        table="battle",
        start_time=timestamp_of_ms(T0),
        end_time=timestamp_of_ms(T0 + 100),
    )
    for name, value in fields.items():
        if isinstance(value, list):
            getattr(request, name).extend(value)
        elif name.endswith("_time"):
            getattr(request, name).CopyFrom(value)
        else:
            setattr(request, name, value)
    return request


async def test_get_flight_info_describes_what_do_get_returns(
    services: ServicesUnderTest,
) -> None:
    client = _client(services)
    request = _request(columns=["hp", "gear"])
    descriptor = flight.FlightDescriptor.for_command(request.SerializeToString())
    info = await asyncio.to_thread(client.get_flight_info, descriptor)
    [endpoint] = info.endpoints
    assert list(endpoint.locations) == []  # redeemed on this same server
    table = await asyncio.to_thread(lambda: client.do_get(endpoint.ticket).read_all())
    assert table.schema.equals(info.schema, check_metadata=True)
    assert table.column_names == ["timestamp", "hp", "gear"]
    assert table.column("hp").to_pylist() == list(range(10))
    # Nested fields are marked as JSON text, as in ReadRange's Arrow answers.
    assert table.schema.field("gear").metadata == {b"fusou.json": b"true"}


async def test_stats_come_with_the_first_message_and_an_empty_answer_has_its_columns(
    services: ServicesUnderTest,
) -> None:
    client = _client(services)
    chunks = await asyncio.to_thread(lambda: list(read_flight(client, _request())))
    assert chunks[0][1] is not None and chunks[0][1].rows_returned == 10
    assert all(stats is None for _, stats in chunks[1:])
    request = _request(start_time=timestamp_of_ms(T0 + 500), end_time=timestamp_of_ms(T0 + 600))
    table, stats = await asyncio.to_thread(read_flight_table, client, request)
    assert table.num_rows == 0 and "hp" in table.column_names
    assert stats is not None and stats.rows_returned == 0


async def test_requests_it_cannot_serve_are_answered_with_their_code(
    services: ServicesUnderTest,
) -> None:
    client = _client(services)

    def get(ticket: bytes) -> pa.Table:
        return client.do_get(flight.Ticket(ticket)).read_all()

    with pytest.raises(pa.ArrowInvalid) as bad:
        await asyncio.to_thread(get, b"\xff\xff not a request")
    assert "ReadRangeRequest" in flight_message(bad.value)
    with pytest.raises(pa.ArrowKeyError) as missing:
        await asyncio.to_thread(get, _request(table="nope").SerializeToString())
    assert flight_message(missing.value) == "no table 'nope' in dataset 'demo'"
    bad_filter = reader_pb2.Filter(column="nope", op=reader_pb2.FILTER_OP_IS_NULL)
    with pytest.raises(pa.ArrowInvalid) as refused:
        await asyncio.to_thread(get, _request(filters=[bad_filter]).SerializeToString())
    assert "filters[0].column" in flight_message(refused.value)
    with pytest.raises(pa.ArrowInvalid) as by_path:
        await asyncio.to_thread(client.get_flight_info, flight.FlightDescriptor.for_path("x"))
    assert "command" in flight_message(by_path.value)
    with pytest.raises(pa.ArrowNotImplementedError) as unimplemented:
        await asyncio.to_thread(lambda: list(client.do_action(flight.Action("x", b""))))
    assert "DoGet" in flight_message(unimplemented.value)
    # Nothing to list: reads are named by their request.
    assert await asyncio.to_thread(lambda: list(client.list_flights())) == []
    assert await asyncio.to_thread(lambda: list(client.list_actions())) == []


async def test_a_raw_grpc_client_sees_proper_codes(services: ServicesUnderTest) -> None:
    def ticket(data: bytes) -> bytes:  # arrow.flight.protocol.Ticket: field 1, bytes
        return b"\x0a" + bytes([len(data)]) + data

    async with grpc.aio.insecure_channel(services.flight_target) as channel:
        do_get = channel.unary_stream(
            "/arrow.flight.protocol.FlightService/DoGet",
            request_serializer=ticket,
            response_deserializer=bytes,
        )
        for data, code in (
            (b"\xff\xff", grpc.StatusCode.INVALID_ARGUMENT),
            (_request(table="nope").SerializeToString(), grpc.StatusCode.NOT_FOUND),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                _ = [m async for m in do_get(data)]
            assert failed.value.code() == code


async def test_the_flight_port_closes_with_the_server(settings: Settings) -> None:
    async with running_services(settings, ["reader"]) as services:
        client = _client(services)
        assert services.server.flight_port > 0
    with pytest.raises(flight.FlightUnavailableError):
        await asyncio.to_thread(
            lambda: client.do_get(
                flight.Ticket(_request().SerializeToString()),
                flight.FlightCallOptions(timeout=5),
            ).read_all()
        )


async def test_servers_without_the_reader_open_no_flight_port(settings: Settings) -> None:
    async with running_services(settings, ["ingest"]) as services:
        assert services.server.flight_port == 0
