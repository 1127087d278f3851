"""The Flight host on its own, over a stand-in service: answers cut into bounded batches, and a
stop whose grace period ends while a call waits for the loop."""

from __future__ import annotations

import asyncio
import threading

import pyarrow as pa
import pytest
from pyarrow import flight

from fusou.api.access import Grant
from fusou.config import Settings
from fusou.server.flight import FlightAnswer, FlightHost
from fusou.server.flight_status import flight_message


class _Service:
    """Answers every ticket with ``rows`` rows in batches of ``batch_rows``; a ticket b"wait"
    waits until the server stops it."""

    method = "/fusou.reader.v1.ReaderService/ReadRange"

    def __init__(self, rows: int, batch_rows: int) -> None:
        self.rows = rows
        self.batch_rows = batch_rows
        self.waiting = threading.Event()

    async def describe(self, command: bytes, grant: Grant) -> pa.Schema:
        return pa.schema([("v", pa.int64())])

    async def fetch(self, ticket: bytes, grant: Grant) -> FlightAnswer:
        if ticket == b"wait":
            self.waiting.set()
            await asyncio.Event().wait()
        table = pa.table({"v": pa.array(range(self.rows), pa.int64())})
        return FlightAnswer(table, b"meta", self.batch_rows)


def _settings() -> Settings:
    return Settings().replace(grpc_host="127.0.0.1", flight_port=0)


async def test_answers_go_out_in_batches_of_the_size_asked() -> None:
    host = FlightHost(_settings(), _Service(rows=10_000, batch_rows=3_000), None)
    port = host.start()
    try:
        client = flight.connect(f"grpc://127.0.0.1:{port}")

        def chunks() -> list[flight.FlightStreamChunk]:
            reader = client.do_get(flight.Ticket(b"x"))
            out = []
            while True:
                try:
                    out.append(reader.read_chunk())
                except StopIteration:
                    return out

        got = await asyncio.to_thread(chunks)
        assert [c.data.num_rows for c in got] == [3_000, 3_000, 3_000, 1_000]
        assert got[0].app_metadata.to_pybytes() == b"meta"
        assert all(c.app_metadata is None for c in got[1:])
    finally:
        assert await host.stop(1.0)


async def test_a_call_still_waiting_when_the_grace_period_ends_is_told_to_retry() -> None:
    service = _Service(rows=1, batch_rows=1)
    host = FlightHost(_settings(), service, None)
    port = host.start()
    client = flight.connect(f"grpc://127.0.0.1:{port}")
    call = asyncio.ensure_future(
        asyncio.to_thread(lambda: client.do_get(flight.Ticket(b"wait")).read_all())
    )
    await asyncio.to_thread(service.waiting.wait, 10)
    # The work is cancelled once the grace period is over, and the call answered.
    assert await host.stop(0.2)
    with pytest.raises(flight.FlightUnavailableError) as refused:
        await call
    assert "retry" in flight_message(refused.value)
