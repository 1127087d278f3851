"""A reader in its own process (as `fusou serve reader` deploys it) while another process
ingests: its cached view of the table's latest schema lags behind the data it reads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest

from fusou.api.reader.v1 import reader_pb2_grpc
from fusou.config import Settings
from fusou.testing import running_services
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import (
    DAY,
    DAY0,
    MINUTE,
    Oracle,
    archive,
    check_arrow,
    ingest,
    read,
    read_request,
)

pytestmark = pytest.mark.integration

DS = "u1"
TABLE = "battle"
WHOLE = (DAY0, DAY0 + DAY)


@dataclass
class TwoProcesses:
    writer: Stubs  # ingest and archiver (and a reader that shares their schema cache)
    reader: reader_pb2_grpc.ReaderServiceAsyncStub  # a reader with a cache of its own


@pytest.fixture
async def two(settings: Settings) -> AsyncIterator[TwoProcesses]:
    async with (
        open_stubs(settings, **SMALL_BLOCKS) as writer,
        running_services(settings.replace(**SMALL_BLOCKS), ["reader"]) as reader,
        grpc.aio.insecure_channel(reader.target) as ch,
    ):
        yield TwoProcesses(writer, reader_pb2_grpc.ReaderServiceStub(ch))


async def first_version(two: TwoProcesses) -> Oracle:
    oracle = Oracle()
    rows = [{"timestamp": DAY0 + i * MINUTE, "api_no": i, "ship": f"s{i}"} for i in range(30)]
    await ingest(two.writer.ingest, oracle, DS, TABLE, rows)
    # The separate reader learns (and caches) version 1.
    check_arrow(await read(two.reader, read_request(DS, TABLE, *WHOLE)), oracle, *WHOLE)
    return oracle


async def test_a_column_of_a_newer_version_can_be_asked_for(two: TwoProcesses) -> None:
    oracle = await first_version(two)
    newer = [{"timestamp": DAY0 + i * MINUTE, "api_no": i, "note": f"n{i}"} for i in range(30, 40)]
    await ingest(two.writer.ingest, oracle, DS, TABLE, newer)
    answer = await read(two.reader, read_request(DS, TABLE, *WHOLE, columns=["note"]))
    check_arrow(answer, oracle, *WHOLE, ["note"])


async def test_new_fields_are_returned_when_the_cached_schema_lags(two: TwoProcesses) -> None:
    oracle = await first_version(two)
    newer = [{"timestamp": DAY0 + i * MINUTE, "api_no": i, "note": f"n{i}"} for i in range(30, 40)]
    await ingest(two.writer.ingest, oracle, DS, TABLE, newer)
    check_arrow(await read(two.reader, read_request(DS, TABLE, *WHOLE)), oracle, *WHOLE)


async def test_widened_fields_are_read_when_the_cached_schema_lags(two: TwoProcesses) -> None:
    oracle = await first_version(two)
    newer = [{"timestamp": DAY0 + i * MINUTE, "api_no": i + 0.5} for i in range(30, 40)]
    await ingest(two.writer.ingest, oracle, DS, TABLE, newer)
    await archive(two.writer.archiver, two.writer.services.clock, DS, TABLE)
    check_arrow(await read(two.reader, read_request(DS, TABLE, *WHOLE)), oracle, *WHOLE)
