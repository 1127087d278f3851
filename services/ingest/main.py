"""Hosting IngestService: ``fusou serve ingest``."""

from __future__ import annotations

from fusou import cpu
from fusou.api.ingest.raw_request import RawIngestRequest
from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.ingest.service import Ingestor
from fusou.runtime import Runtime
from fusou.services.ingest.servicer import IngestServicer
from fusou.services.spec import ServiceSpec, Serving
from fusou.upload.uploader import RawUploader


def _serving(runtime: Runtime) -> Serving[IngestServicer]:
    ingestor = Ingestor(runtime.settings, runtime.pool, runtime.registry, clock=runtime.clock)
    uploader = RawUploader(
        runtime.settings, runtime.pool, runtime.store, runtime.registry, clock=runtime.clock
    )
    return Serving(IngestServicer(ingestor, uploader, runtime.registry), close=ingestor.close)


SERVICE = ServiceSpec(
    name="ingest",
    descriptor=ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
    add_to_server=ingest_pb2_grpc.add_IngestServiceServicer_to_server,
    serving=_serving,
    # Start the worker processes now, not on the first request, with what they will run.
    start=lambda: cpu.warm_up("fusou.ingest.prepare", "fusou.api.ingest.request"),
    # Ingest requests stay bytes until a worker process parses them (see fusou.api.ingest.raw_request).
    request_types={"Ingest": RawIngestRequest},
)
