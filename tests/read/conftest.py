from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from fusou.api.archiver.v1 import archiver_pb2_grpc
from fusou.api.compactor.v1 import compactor_pb2_grpc
from fusou.api.ingest.v1 import ingest_pb2_grpc
from fusou.api.reader.v1 import reader_pb2_grpc
from fusou.config import Settings
from fusou.testing import ServicesUnderTest, running_services

# Small blocks and files: a couple of hundred rows make several files of several blocks, so
# read ranges cut through blocks and span files.
SMALL_BLOCKS = {
    "archive_min_age_s": 0.0,
    "archive_block_rows": 20,
    "archive_max_file_bytes": 1150,
}


@dataclass
class Stubs:
    services: ServicesUnderTest
    url: str
    ingest: ingest_pb2_grpc.IngestServiceAsyncStub
    archiver: archiver_pb2_grpc.ArchiverServiceAsyncStub
    reader: reader_pb2_grpc.ReaderServiceAsyncStub
    compactor: compactor_pb2_grpc.CompactorServiceAsyncStub


@asynccontextmanager
async def open_stubs(settings: Settings, **changes: Any) -> AsyncIterator[Stubs]:
    """The four services in this process, with ``changes`` to the settings."""
    tuned = settings.replace(**changes)
    async with (
        running_services(tuned, ["ingest", "archiver", "reader", "compactor"]) as services,
        grpc.aio.insecure_channel(services.target) as ch,
    ):
        assert settings.database.url is not None
        yield Stubs(
            services,
            settings.database.url,
            ingest_pb2_grpc.IngestServiceStub(ch),
            archiver_pb2_grpc.ArchiverServiceStub(ch),
            reader_pb2_grpc.ReaderServiceStub(ch),
            compactor_pb2_grpc.CompactorServiceStub(ch),
        )


@pytest.fixture
async def stubs(settings: Settings) -> AsyncIterator[Stubs]:
    async with open_stubs(settings, **SMALL_BLOCKS) as s:
        yield s
