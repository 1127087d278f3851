"""Hosting ReaderService: ``fusou serve reader``."""

from __future__ import annotations

from fusou.api.reader.v1 import reader_pb2, reader_pb2_grpc
from fusou.cpu import run_cpu
from fusou.dashboard.web import dashboard_pages
from fusou.formats import avro_decoder
from fusou.read.reader import Reader
from fusou.runtime import Runtime
from fusou.services.reader.flight import ReaderFlight
from fusou.services.reader.servicer import ReaderServicer
from fusou.services.spec import ServiceSpec, Serving


def _serving(runtime: Runtime) -> Serving[ReaderServicer]:
    reader = Reader(runtime.settings, runtime.read_pool, runtime.store, runtime.registry)
    return Serving(
        ReaderServicer(runtime.pool, reader),
        flight=ReaderFlight(reader),
        pages=dashboard_pages(runtime.pool, runtime.settings),
    )


async def _warm_up() -> None:
    # Loading the compiled decoder takes a second (compiling it, the first time on a machine,
    # several): before the first call, not during it.
    await run_cpu(avro_decoder.warm_up)


SERVICE = ServiceSpec(
    name="reader",
    descriptor=reader_pb2.DESCRIPTOR.services_by_name["ReaderService"],
    add_to_server=reader_pb2_grpc.add_ReaderServiceServicer_to_server,
    serving=_serving,
    start=_warm_up,
)
