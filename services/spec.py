"""What each service declares, once, in its ``main.py``: the name ``fusou serve`` knows it by,
its generated descriptor and registration function, and how to build its servicer over a
runtime. ``ServiceSpec.hosted`` turns any of them into what the server plumbing hosts."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from google.protobuf.descriptor import ServiceDescriptor
from grpc import aio

from fusou.runtime import Runtime
from fusou.server.app import HostedService
from fusou.server.http import Pages

if TYPE_CHECKING:
    from fusou.server.flight import FlightService

S = TypeVar("S")

Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Serving(Generic[S]):
    """A servicer built over a runtime, and what to close once the server stopped (the domain
    object behind it may hold worker processes or threads)."""

    servicer: S
    close: Hook | None = None
    # Served on the Flight port beside the servicer's gRPC one.
    flight: FlightService | None = None
    # Served on the HTTP port beside /metrics (the dashboard).
    pages: Pages | None = None


@dataclass(frozen=True)
class ServiceSpec(Generic[S]):
    name: str  # what ``fusou serve`` takes, e.g. "ingest"
    descriptor: ServiceDescriptor  # from the generated *_pb2 module
    add_to_server: Callable[[S, aio.Server], None]  # the generated add_*Servicer_to_server
    serving: Callable[[Runtime], Serving[S]]
    # Called before the server accepts calls (e.g. to start worker processes).
    start: Hook | None = None
    # Per method name, a class whose FromString replaces the generated request parser (see
    # HostedService.request_types).
    request_types: Mapping[str, Any] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        """The service's name on the wire, e.g. "fusou.ingest.v1.IngestService"."""
        return self.descriptor.full_name

    def hosted(self, runtime: Runtime) -> HostedService:
        serving = self.serving(runtime)
        return HostedService(
            full_name=self.full_name,
            add_to_server=functools.partial(self.add_to_server, serving.servicer),
            start=self.start,
            close=serving.close,
            flight=serving.flight,
            pages=serving.pages,
            # methods_by_name: a method the service does not have fails here, not silently.
            request_types={
                f"/{self.full_name}/{self.descriptor.methods_by_name[method].name}": parser
                for method, parser in self.request_types.items()
            },
        )
