"""Hosting IngestService: ``fusou serve ingest`` (or ``python -m services.ingest``)."""

from __future__ import annotations

from grpc import aio

from fusou import cpu
from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.ingest.service import Ingestor
from fusou.ingest.wire import RawIngestRequest
from fusou.runtime import Runtime
from fusou.server.app import HostedService
from fusou.services.ingest.servicer import IngestServicer
from fusou.upload.uploader import RawUploader

SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


def _add(servicer: IngestServicer, server: aio.Server) -> None:
    ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server)


def hosted(runtime: Runtime) -> HostedService:
    ingestor = Ingestor(runtime.settings, runtime.pool, runtime.registry, clock=runtime.clock)
    uploader = RawUploader(
        runtime.settings, runtime.pool, runtime.store, runtime.registry, clock=runtime.clock
    )
    servicer = IngestServicer(ingestor, uploader, runtime.registry)
    return HostedService(
        full_name=SERVICE_NAME,
        add_to_server=lambda server: _add(servicer, server),
        # Start the worker processes now, not on the first request.
        start=cpu.warm_up,
        close=ingestor.close,
        # Ingest requests stay bytes until a worker process parses them (see fusou.ingest.wire).
        request_types={"/fusou.ingest.v1.IngestService/Ingest": RawIngestRequest},
    )
