"""Hosting any set of servicers on one grpc.aio server, with health, readiness, reflection,
TLS, bearer tokens, and graceful shutdown (SIGTERM: health goes NOT_SERVING; after the drain
delay new calls are refused, and in-flight calls get the grace period to finish).

The server receives what it hosts (``HostedService``) and knows no service: ``fusou.app``
builds one from the services named."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from fusou.api.access import AccessControl
from fusou.auth.tokens import configured_tokens
from fusou.config import ConfigError, Settings
from fusou.server import http, metrics
from fusou.server.interceptor import ErrorMappingInterceptor
from fusou.server.observing import ObservingInterceptor
from fusou.server.readiness import READINESS, Check, watch
from fusou.server.reflection import enable_reflection
from fusou.server.tls import server_credentials

if TYPE_CHECKING:
    # pyarrow.flight is loaded only by a server that hosts a Flight service.
    from fusou.server.flight import FlightHost, FlightService

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostedService:
    """A servicer ready to be added to a server."""

    full_name: str  # e.g. "fusou.ingest.v1.IngestService"
    add_to_server: Callable[[aio.Server], None]
    # Called before the server accepts calls (e.g. to start worker processes).
    start: Callable[[], Awaitable[None]] | None = None
    # Called after the server stopped accepting calls, before the process exits.
    close: Callable[[], Awaitable[None]] | None = None
    # Per method ("/pkg.Service/Method"), a class whose FromString replaces the generated
    # request parser, e.g. to keep a request as bytes for a worker process.
    request_types: Mapping[str, Any] = field(default_factory=dict)
    # Served on FUSOU_FLIGHT_PORT beside the gRPC port (one per server).
    flight: FlightService | None = None
    # Served on the HTTP port (FUSOU_METRICS_PORT) beside /metrics.
    pages: http.Pages | None = None


@dataclass
class FusouServer:
    settings: Settings
    services: Sequence[HostedService]
    # What the process depends on (fusou.server.readiness); None: always ready.
    readiness: Check | None = None
    # Refreshes gauges read from the database (fusou.server.metrics.refresh_catalog).
    gauges: Callable[[], Awaitable[None]] | None = None
    metrics_port: int = 0
    # The plaintext health-only port (FUSOU_HEALTH_PORT), 0 when there is none.
    health_port: int = 0
    # The Arrow Flight port, 0 when no hosted service serves Flight.
    flight_port: int = 0
    _flight: FlightHost | None = None
    _health_server: aio.Server | None = None
    _http: http.HttpPort | None = None
    _gauges: asyncio.Task[None] | None = None
    health: HealthServicer = field(default_factory=HealthServicer)
    port: int = 0
    _watcher: asyncio.Task[None] | None = None
    _server: aio.Server | None = None
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: asyncio.Future[None] | None = None
    _drain_cut: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> int:
        limit = self.settings.server.grpc_max_message_bytes
        # Configuration errors surface before anything starts.
        credentials = server_credentials(self.settings)
        tokens = configured_tokens(self.settings)
        access = None if tokens is None else AccessControl(tokens)
        server = aio.server(
            interceptors=[
                ObservingInterceptor(),
                ErrorMappingInterceptor(
                    {m: t for s in self.services for m, t in s.request_types.items()},
                    access,
                ),
            ],
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        for service in self.services:
            if service.start is not None:
                await service.start()
            service.add_to_server(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [s.full_name for s in self.services]
        enable_reflection(
            [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name], server
        )
        self.port = _listen(
            server, self.settings.server.grpc_host, self.settings.server.grpc_port, credentials
        )
        if self.settings.server.health_port is not None:
            # Kubernetes' gRPC probes speak plaintext only; this port answers health alone.
            health_only = aio.server(options=[("grpc.so_reuseport", 0)])
            health_pb2_grpc.add_HealthServicer_to_server(self.health, health_only)
            self.health_port = _listen(
                health_only,
                self.settings.server.grpc_host,
                self.settings.server.health_port,
                None,
                "HEALTH",
            )
            await health_only.start()
            self._health_server = health_only
        flights = [s.flight for s in self.services if s.flight is not None]
        if len(flights) > 1:
            raise ConfigError("only one hosted service may serve Arrow Flight")
        pages = [s.pages for s in self.services if s.pages is not None]
        try:
            if flights:
                from fusou.server.flight import FlightHost

                self._flight = FlightHost(self.settings, flights[0], access)
                self.flight_port = self._flight.start()
            self._http = await http.serve(
                self.settings.server.grpc_host, self.settings.server.metrics_port, pages, access
            )
            self.metrics_port = self._http.port
            await server.start()
        except BaseException:
            if self._health_server is not None:
                await self._health_server.stop(0)
            if self._flight is not None:
                await self._flight.stop(0)
            if self._http is not None:
                await self._http.close()
            raise
        self._server = server
        if self.gauges is not None:
            self._gauges = asyncio.create_task(
                metrics.every(self.settings.server.metrics_interval_s, self.gauges)
            )
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        if self.readiness is None:
            await self._set_ready(True)
        else:
            # The first check before the port is announced, then one every interval.
            await self._set_ready(not await self.readiness())
            self._watcher = asyncio.create_task(
                watch(
                    self.readiness,
                    self._set_ready,
                    self.settings.server.readiness_interval_s,
                    names,
                )
            )
        log.info(
            "listening on %s:%d (%s) serving %s",
            self.settings.server.grpc_host,
            self.port,
            "TLS" if credentials is not None else "plaintext",
            ", ".join(names),
        )
        if tokens is None:
            log.warning(
                "authentication is off: no FUSOU_AUTH_TOKENS or FUSOU_AUTH_TOKENS_FILE, so every "
                "client may call every RPC on every dataset"
            )
        else:
            log.info("authentication is on: %d bearer token(s) configured", len(tokens))
            if credentials is None:
                log.warning("bearer tokens travel in clear text: FUSOU_TLS_CERT_FILE is not set")
            if pages:
                log.warning(
                    "the dashboard on HTTP port %d takes bearer tokens over plaintext HTTP: "
                    "reach it through TLS (an ingress, or kubectl port-forward)",
                    self.metrics_port,
                )
        return self.port

    async def _set_ready(self, ready: bool) -> None:
        metrics.READY.set(1 if ready else 0)
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if ready
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in [READINESS, *(s.full_name for s in self.services)]:
            await self.health.set(name, status)

    async def stop(self, grace: float | None = None) -> None:
        """Stop once; a second SIGTERM cuts the drain delay short, then waits for the first
        stop (in-flight calls keep their grace period)."""
        if self._server is None:
            self._stopped.set()  # never started: nothing to drain
            return
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop(grace))
        else:
            self._drain_cut.set()
        await asyncio.shield(self._stopping)

    async def _stop(self, grace: float | None) -> None:
        try:
            await self._shut_down(grace)
        except BaseException:
            log.exception("error while shutting down")
            raise
        finally:
            # wait() returns even when shutting down failed: the process must be able to exit.
            self._stopped.set()

    async def _shut_down(self, grace: float | None) -> None:
        assert self._server is not None
        grace = self.settings.server.shutdown_grace_s if grace is None else grace
        drain = self.settings.server.shutdown_drain_s
        log.info(
            "shutting down: health NOT_SERVING, %.1fs drain accepting calls, "
            "then %.1fs grace for in-flight calls",
            drain,
            grace,
        )
        for task in (self._watcher, self._gauges):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.health.enter_graceful_shutdown()
        if drain > 0:
            # Load balancers and Kubernetes endpoints learn of NOT_SERVING (or of the pod's
            # termination) only after a while; calls routed here meanwhile are still served.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drain_cut.wait(), drain)
        if self._flight is not None:
            await asyncio.gather(self._server.stop(grace), self._flight.stop(grace))
        else:
            await self._server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(0)
        for service in self.services:
            if service.close is not None:
                try:
                    await service.close()
                except Exception:
                    log.exception("error while closing %s", service.full_name)
        if self._http is not None:
            await self._http.close()

    async def wait(self) -> None:
        await self._stopped.wait()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop()))


def _listen(
    server: aio.Server,
    host: str,
    port: int,
    credentials: Any,
    variable: str = "GRPC",
) -> int:
    address = f"{host}:{port}"
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:
        bound = 0
    if bound == 0:
        why = "port in use or address not available"
        if credentials is not None:
            why += ", or FUSOU_TLS_CERT_FILE and FUSOU_TLS_KEY_FILE do not match"
        raise ConfigError(f"FUSOU_{variable}_PORT: cannot listen on {address} ({why})")
    return bound
