"""The services running in this process on an ephemeral port, for tests and benchmarks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fusou.app import build_server
from fusou.clock import ManualClock
from fusou.config import Settings
from fusou.runtime import Runtime, open_runtime
from fusou.server.app import FusouServer


@dataclass
class ServicesUnderTest:
    runtime: Runtime
    server: FusouServer
    # The runtime's clock: ``clock.advance(s)`` ages everything stored so far by ``s`` seconds.
    clock: ManualClock

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def flight_target(self) -> str:
        """The Arrow Flight server's host:port (when a hosted service serves Flight)."""
        return f"127.0.0.1:{self.server.flight_port}"


@asynccontextmanager
async def running_services(
    settings: Settings, names: Sequence[str] = ("ingest",), clock: ManualClock | None = None
) -> AsyncIterator[ServicesUnderTest]:
    settings = settings.replace(grpc_host="127.0.0.1", grpc_port=0, metrics_port=0, flight_port=0)
    clock = clock or ManualClock()
    runtime = await open_runtime(settings, clock)
    server = build_server(runtime, names)
    try:
        await server.start()
        yield ServicesUnderTest(runtime, server, clock)
    finally:
        await server.stop(grace=1.0)
        await runtime.close()
