"""Hosting ReaderService: ``fusou serve reader``."""

from __future__ import annotations

from grpc import aio

from fusou.api.reader.v1 import reader_pb2, reader_pb2_grpc
from fusou.cpu import run_cpu
from fusou.formats import avro_decoder
from fusou.read.reader import Reader
from fusou.runtime import Runtime
from fusou.server.app import HostedService
from fusou.services.reader.servicer import ReaderServicer

SERVICE_NAME = reader_pb2.DESCRIPTOR.services_by_name["ReaderService"].full_name


def _add(servicer: ReaderServicer, server: aio.Server) -> None:
    reader_pb2_grpc.add_ReaderServiceServicer_to_server(servicer, server)


async def _warm_up() -> None:
    # Loading the compiled decoder takes a second (compiling it, the first time on a machine,
    # several): before the first call, not during it.
    await run_cpu(avro_decoder.warm_up)


def hosted(runtime: Runtime) -> HostedService:
    reader = Reader(runtime.settings, runtime.read_pool, runtime.store, runtime.registry)
    servicer = ReaderServicer(runtime.pool, reader)
    return HostedService(
        full_name=SERVICE_NAME,
        add_to_server=lambda server: _add(servicer, server),
        start=_warm_up,
    )
