"""Hosting ArchiverService: ``fusou serve archiver``."""

from __future__ import annotations

from grpc import aio

from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.archive.archiver import Archiver
from fusou.runtime import Runtime
from fusou.server.app import HostedService
from fusou.services.archiver.servicer import ArchiverServicer

SERVICE_NAME = archiver_pb2.DESCRIPTOR.services_by_name["ArchiverService"].full_name


def _add(servicer: ArchiverServicer, server: aio.Server) -> None:
    archiver_pb2_grpc.add_ArchiverServiceServicer_to_server(servicer, server)


def hosted(runtime: Runtime) -> HostedService:
    archiver = Archiver(
        runtime.settings, runtime.pool, runtime.store, runtime.registry, clock=runtime.clock
    )
    servicer = ArchiverServicer(archiver)
    return HostedService(
        full_name=SERVICE_NAME, add_to_server=lambda server: _add(servicer, server)
    )
