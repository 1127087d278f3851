"""Hosting ArchiverService: ``fusou serve archiver``."""

from __future__ import annotations

from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.archive.archiver import Archiver
from fusou.runtime import Runtime
from fusou.services.archiver.servicer import ArchiverServicer
from fusou.services.spec import ServiceSpec, Serving


def _serving(runtime: Runtime) -> Serving[ArchiverServicer]:
    archiver = Archiver(
        runtime.settings, runtime.pool, runtime.store, runtime.registry, clock=runtime.clock
    )
    return Serving(ArchiverServicer(archiver))


SERVICE = ServiceSpec(
    name="archiver",
    descriptor=archiver_pb2.DESCRIPTOR.services_by_name["ArchiverService"],
    add_to_server=archiver_pb2_grpc.add_ArchiverServiceServicer_to_server,
    serving=_serving,
)
