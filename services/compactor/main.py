"""Hosting CompactorService: ``fusou serve compactor``."""

from __future__ import annotations

from grpc import aio

from fusou.api.compactor.v1 import compactor_pb2, compactor_pb2_grpc
from fusou.compact.compactor import Compactor
from fusou.runtime import Runtime
from fusou.server.app import HostedService
from fusou.services.compactor.servicer import CompactorServicer

SERVICE_NAME = compactor_pb2.DESCRIPTOR.services_by_name["CompactorService"].full_name


def _add(servicer: CompactorServicer, server: aio.Server) -> None:
    compactor_pb2_grpc.add_CompactorServiceServicer_to_server(servicer, server)


def hosted(runtime: Runtime) -> HostedService:
    compactor = Compactor(
        runtime.settings, runtime.pool, runtime.store, runtime.registry, clock=runtime.clock
    )
    servicer = CompactorServicer(compactor)
    return HostedService(
        full_name=SERVICE_NAME,
        add_to_server=lambda server: _add(servicer, server),
        close=compactor.close,
    )
