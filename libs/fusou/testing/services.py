"""The services running in this process on an ephemeral port, for tests and benchmarks."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fusou.config import Settings
from fusou.runtime import Runtime, open_runtime
from fusou.server.app import FusouServer
from fusou.server.metrics import refresh_buffer
from fusou.server.readiness import dependency_check


@dataclass
class ServicesUnderTest:
    runtime: Runtime
    server: FusouServer

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


@asynccontextmanager
async def running_services(
    settings: Settings, names: Sequence[str] = ("ingest",)
) -> AsyncIterator[ServicesUnderTest]:
    from services import SERVICES

    settings = settings.replace(grpc_host="127.0.0.1", grpc_port=0, metrics_port=0)
    runtime = await open_runtime(settings)
    server = FusouServer(
        settings,
        [SERVICES[n](runtime) for n in names],
        readiness=dependency_check(runtime),
        gauges=functools.partial(refresh_buffer, runtime.pool),
    )
    try:
        await server.start()
        yield ServicesUnderTest(runtime, server)
    finally:
        await server.stop(grace=1.0)
        await runtime.close()
