"""Hosting: the server plumbing receives the services it hosts and imports none of them; each
service is one declaration (``fusou.services.spec.ServiceSpec``) that ``fusou.app`` turns into
what the plumbing hosts."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace
from typing import Any, cast

import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.api.ingest.raw_request import RawIngestRequest
from fusou.app import SERVICES
from fusou.config import Settings
from fusou.runtime import Runtime
from fusou.server.app import FusouServer
from fusou.services.spec import Serving

# The specs as the app knows them, typed for any servicer: the tests host fakes.
INGEST = SERVICES["ingest"]
ARCHIVER = SERVICES["archiver"]

# The spec only hands the runtime to its ``serving``; the fakes below ignore it.
NO_RUNTIME = cast(Runtime, None)


class FakeArchiver(archiver_pb2_grpc.ArchiverServiceServicer):
    def __init__(self) -> None:
        self.closed = False

    async def Archive(
        self, request: archiver_pb2.ArchiveRequest, context: aio.ServicerContext[Any, Any]
    ) -> archiver_pb2.ArchiveResponse:
        return archiver_pb2.ArchiveResponse(total_rows=len(request.dataset_id))

    async def PurgeDataset(
        self, request: archiver_pb2.PurgeDatasetRequest, context: aio.ServicerContext[Any, Any]
    ) -> archiver_pb2.PurgeDatasetResponse:
        return archiver_pb2.PurgeDatasetResponse(dataset_id=request.dataset_id)

    async def DeleteRows(
        self, request: archiver_pb2.DeleteRowsRequest, context: aio.ServicerContext[Any, Any]
    ) -> archiver_pb2.DeleteRowsResponse:
        return archiver_pb2.DeleteRowsResponse()

    async def EnforceRetention(
        self,
        request: archiver_pb2.EnforceRetentionRequest,
        context: aio.ServicerContext[Any, Any],
    ) -> archiver_pb2.EnforceRetentionResponse:
        return archiver_pb2.EnforceRetentionResponse()

    async def close(self) -> None:
        self.closed = True


def test_the_server_plumbing_imports_no_service_nor_the_app() -> None:
    code = (
        "import pkgutil, importlib, sys, fusou.server\n"
        "for m in pkgutil.iter_modules(fusou.server.__path__, 'fusou.server.'):\n"
        "    importlib.import_module(m.name)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('fusou.services', 'fusou.app',"
        " 'fusou.runtime', 'fusou.cli'))))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_app_knows_the_four_services_by_name_and_wire_name() -> None:
    assert list(SERVICES) == ["ingest", "archiver", "compactor", "reader"]
    assert {name: spec.full_name for name, spec in SERVICES.items()} == {
        "ingest": "fusou.ingest.v1.IngestService",
        "archiver": "fusou.archiver.v1.ArchiverService",
        "compactor": "fusou.compactor.v1.CompactorService",
        "reader": "fusou.reader.v1.ReaderService",
    }
    for name, spec in SERVICES.items():
        # Each declared in its own folder, fusou.services.<name>.
        assert spec.serving.__module__ == f"fusou.services.{name}.main"


def test_a_hosted_service_keeps_what_its_spec_declares() -> None:
    servicer = FakeArchiver()
    ingest = replace(INGEST, serving=lambda _: Serving(servicer, close=servicer.close))
    hosted = ingest.hosted(NO_RUNTIME)
    assert hosted.full_name == "fusou.ingest.v1.IngestService"
    assert hosted.request_types == {"/fusou.ingest.v1.IngestService/Ingest": RawIngestRequest}
    assert hosted.start is INGEST.start is not None
    assert hosted.close == servicer.close


def test_a_spec_naming_a_method_its_service_lacks_fails_when_hosted() -> None:
    servicer = FakeArchiver()
    typo = replace(
        ARCHIVER, serving=lambda _: Serving(servicer), request_types={"Archvie": RawIngestRequest}
    )
    with pytest.raises(KeyError, match="Archvie"):
        typo.hosted(NO_RUNTIME)


async def test_the_server_serves_a_service_handed_to_it() -> None:
    servicer = FakeArchiver()
    archiver = replace(ARCHIVER, serving=lambda _: Serving(servicer, close=servicer.close))
    settings = Settings().replace(grpc_host="127.0.0.1", grpc_port=0, metrics_port=0)
    server = FusouServer(settings, [archiver.hosted(NO_RUNTIME)])
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = archiver_pb2_grpc.ArchiverServiceStub(channel)
            answer = await stub.Archive(archiver_pb2.ArchiveRequest(dataset_id="abc"))
            assert answer.total_rows == 3
            health = health_pb2_grpc.HealthStub(channel)
            status = await health.Check(health_pb2.HealthCheckRequest(service=archiver.full_name))
            assert status.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await server.stop(grace=0)
    assert servicer.closed
