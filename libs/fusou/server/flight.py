"""Hosting an Arrow Flight service beside the gRPC server: its own port, the same TLS files and
bearer tokens, the same error mapping, metrics and call log.

pyarrow's Flight server is C++ gRPC with a thread per call: it writes Arrow batches without
Python in the way, which is what bulk answers need. Handlers run on those threads and hand the
work to the process's event loop (``FlightService``), waiting for its answer; the loop is never
blocked by them, so health checks and the gRPC port go on answering.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import pyarrow as pa
from pyarrow import flight

from fusou.api.access import OPEN, AccessControl, Grant
from fusou.config import ConfigError, Settings
from fusou.errors import Unavailable
from fusou.logs import CURRENT_CALL, REQUEST_ID_HEADER, CallInfo, request_id_of
from fusou.server.flight_status import flight_code, flight_exception
from fusou.server.observing import record_call
from fusou.server.tls import server_key_pair

log = logging.getLogger(__name__)

T = TypeVar("T")

FLIGHT_SERVICE = "/arrow.flight.protocol.FlightService"
# Set when a call outlived its server's stop: the process must then leave without waiting.
_OUTLIVED_STOP = threading.Event()


def calls_outlived_stop() -> bool:
    """Whether a Flight call was still running when its server finished stopping. Its write
    (to a client that stopped reading) holds a thread of Flight's C++ server, which would keep
    the process from exiting (pyarrow's shutdown takes no deadline)."""
    return _OUTLIVED_STOP.is_set()


# How often a handler waiting for the loop looks whether its client went away.
_CANCEL_POLL_S = 0.25


@dataclass(frozen=True)
class FlightAnswer:
    """What DoGet streams: a table, in batches of at most ``batch_rows`` rows, and bytes for
    the first message's app_metadata."""

    table: pa.Table
    app_metadata: bytes = b""
    batch_rows: int | None = None


class FlightService(Protocol):
    """A Flight service over the process's domain objects. Commands and tickets are the
    serialized request of one gRPC method, whose access rule applies to them."""

    @property
    def method(self) -> str:
        """The gRPC method (e.g. "/fusou.reader.v1.ReaderService/ReadRange")."""
        ...

    async def describe(self, command: bytes, grant: Grant) -> pa.Schema:
        """The schema of the answer to ``command``, checked and admitted as DoGet would."""
        ...

    async def fetch(self, ticket: bytes, grant: Grant) -> FlightAnswer: ...


class _Call(flight.ServerMiddleware):  # type: ignore[misc]
    """One admitted call: its grant, log context and metrics."""

    def __init__(self, grant: Grant, info: CallInfo) -> None:
        self.grant = grant
        self.info = info
        self.code = "OK"
        self._started = time.perf_counter()

    def sending_headers(self) -> dict[str, str]:
        return {REQUEST_ID_HEADER: self.info.request_id}

    def call_completed(self, exception: BaseException | None) -> None:
        if exception is not None and self.code == "OK":
            self.code = flight_code(exception)
        record_call(self.info, self.code, time.perf_counter() - self._started)


_METHOD_NAMES = {
    flight.FlightMethod.HANDSHAKE: "Handshake",
    flight.FlightMethod.LIST_FLIGHTS: "ListFlights",
    flight.FlightMethod.GET_FLIGHT_INFO: "GetFlightInfo",
    flight.FlightMethod.GET_SCHEMA: "GetSchema",
    flight.FlightMethod.DO_GET: "DoGet",
    flight.FlightMethod.DO_PUT: "DoPut",
    flight.FlightMethod.DO_ACTION: "DoAction",
    flight.FlightMethod.LIST_ACTIONS: "ListActions",
    flight.FlightMethod.DO_EXCHANGE: "DoExchange",
}


class _Admission(flight.ServerMiddlewareFactory):  # type: ignore[misc]
    """Admits each call by its bearer token under the service's gRPC method rule."""

    def __init__(self, access: AccessControl | None, method: str) -> None:
        self._access = access
        self._method = method

    def start_call(self, info: Any, headers: dict[str, list[str]]) -> _Call:
        metadata = [(key, value) for key, values in headers.items() for value in values]
        call = CallInfo(
            request_id_of(metadata), f"{FLIGHT_SERVICE}/{_METHOD_NAMES.get(info.method, '?')}"
        )
        try:
            grant = OPEN if self._access is None else self._access.admit(self._method, metadata)
        except Exception as exc:  # noqa: BLE001 - the mapping point: every error answers
            refusal = flight_exception(exc)
            record_call(call, flight_code(refusal), 0.0)
            raise refusal from None
        call.principal = grant.principal
        return _Call(grant, call)


class _FlightServer(flight.FlightServerBase):  # type: ignore[misc]
    def __init__(
        self,
        location: str,
        service: FlightService,
        loop: asyncio.AbstractEventLoop,
        access: AccessControl | None,
        tls: list[tuple[bytes, bytes]] | None,
    ) -> None:
        super().__init__(
            location,
            tls_certificates=tls or [],
            middleware={"fusou": _Admission(access, service.method)},
        )
        self._service = service
        self._loop = loop
        # Work handed to the loop and not yet answered, cancelled when the grace period ends.
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()
        # Set once the grace period is over: streams stop at their next batch.
        self.closing = threading.Event()

    def cancel_inflight(self) -> None:
        with self._lock:
            self.closing.set()
            pending = list(self._inflight)
        for future in pending:
            future.cancel()

    def _on_loop(self, context: Any, work: Coroutine[Any, Any, T]) -> T:
        """``work``'s result, run on the event loop under the call's log context; the work is
        cancelled when the client goes away or the server's grace period ends."""
        call: _Call = context.get_middleware("fusou")

        async def with_context() -> T:
            CURRENT_CALL.set(call.info)  # the task's own copy of the context
            return await work

        with self._lock:
            # Under the lock: cancel_inflight either sees this future or ran before the check.
            if self.closing.is_set():
                work.close()
                call.code = "UNAVAILABLE"
                raise _unavailable("the server is shutting down; retry")
            future = asyncio.run_coroutine_threadsafe(with_context(), self._loop)
            self._inflight.add(future)
        try:
            while True:
                try:
                    return future.result(_CANCEL_POLL_S)
                except concurrent.futures.TimeoutError:
                    if context.is_cancelled():
                        future.cancel()
                        call.code = "CANCELLED"
                        raise flight.FlightCancelledError("the client cancelled the call") from None
        except concurrent.futures.CancelledError:
            # Not the client's doing (that is answered above): the server stopped the work.
            call.code = "UNAVAILABLE"
            raise _unavailable("the server shut down before the read finished; retry") from None
        except Exception as exc:
            if isinstance(exc, flight.FlightCancelledError):
                raise
            refusal = flight_exception(exc)
            call.code = flight_code(refusal)
            raise refusal from None
        finally:
            with self._lock:
                self._inflight.discard(future)

    def _grant(self, context: Any) -> Grant:
        call: _Call = context.get_middleware("fusou")
        return call.grant

    def get_flight_info(self, context: Any, descriptor: flight.FlightDescriptor) -> Any:
        if descriptor.descriptor_type != flight.DescriptorType.CMD:
            call: _Call = context.get_middleware("fusou")
            call.code = "INVALID_ARGUMENT"
            raise pa.ArrowInvalid(
                f"the descriptor must be a command: the serialized request of "
                f"{self._service.method.rsplit('/', 1)[-1]}"
            )
        command = bytes(descriptor.command)
        schema = self._on_loop(context, self._service.describe(command, self._grant(context)))
        # No location: the ticket is redeemed on this same server.
        return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(command, [])], -1, -1)

    def get_schema(self, context: Any, descriptor: flight.FlightDescriptor) -> Any:
        return flight.SchemaResult(self.get_flight_info(context, descriptor).schema)

    def do_get(self, context: Any, ticket: flight.Ticket) -> Any:
        answer = self._on_loop(
            context, self._service.fetch(bytes(ticket.ticket), self._grant(context))
        )
        return flight.GeneratorStream(answer.table.schema, self._messages(answer))

    def _messages(self, answer: FlightAnswer) -> Iterator[Any]:
        """The answer in batches of at most ``answer.batch_rows`` rows (each is one message;
        Flight refuses messages past 2 GiB), the first carrying the app metadata (an empty
        batch when there are no rows). A server past its grace period stops between two."""
        table = answer.table
        batches = table.to_batches(max_chunksize=answer.batch_rows)
        first = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
        yield first, pa.py_buffer(answer.app_metadata)
        for batch in batches[1:]:
            if self.closing.is_set():
                raise _unavailable("the server shut down before the answer was sent; retry")
            yield batch

    def list_flights(self, context: Any, criteria: bytes) -> Iterator[Any]:
        return iter(())  # reads are named by their request, not listed

    def list_actions(self, context: Any) -> list[Any]:
        return []

    def do_action(self, context: Any, action: Any) -> Any:
        return self._unimplemented(context, "DoAction")

    def do_put(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> Any:
        return self._unimplemented(context, "DoPut")

    def do_exchange(self, context: Any, descriptor: Any, reader: Any, writer: Any) -> Any:
        return self._unimplemented(context, "DoExchange")

    def _unimplemented(self, context: Any, method: str) -> Any:
        call: _Call = context.get_middleware("fusou")
        call.code = "UNIMPLEMENTED"
        raise pa.ArrowNotImplementedError(
            f"{method}: this server answers GetFlightInfo, GetSchema and DoGet only"
        )


def _unavailable(message: str) -> Exception:
    # Through the one mapping, so the answer carries the google.rpc.Status like any other.
    return flight_exception(Unavailable(message))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class FlightHost:
    """A Flight service on FUSOU_FLIGHT_PORT, started and stopped with the gRPC server."""

    def __init__(
        self, settings: Settings, service: FlightService, access: AccessControl | None
    ) -> None:
        self._settings = settings
        self._service = service
        self._access = access
        self._server: _FlightServer | None = None
        self.port = 0

    def start(self) -> int:
        s = self._settings.server
        pair = server_key_pair(self._settings)
        tls = None if pair is None else [pair]
        scheme = "grpc+tls" if tls else "grpc+tcp"
        location = f"{scheme}://{_url_host(s.grpc_host)}:{s.flight_port}"
        try:
            self._server = _FlightServer(
                location, self._service, asyncio.get_running_loop(), self._access, tls
            )
        except (pa.ArrowException, OSError) as exc:
            raise ConfigError(f"FUSOU_FLIGHT_PORT: cannot listen on {location} ({exc})") from None
        self.port = self._server.port
        log.info("Arrow Flight on %s:%d (%s)", s.grpc_host, self.port, scheme)
        return self.port

    async def stop(self, grace: float) -> bool:
        """Refuse new calls and give those in flight ``grace`` seconds (their handlers need the
        loop, so this waits without blocking it), then cancel their work. False when a call
        was still running after that: one whose client stopped reading holds a write that
        only the process's exit ends (``FusouServer.finished``)."""
        server, self._server = self._server, None
        if server is None:
            return True
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        def shut_down() -> None:
            try:
                server.shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(done.set)

        # A daemon thread: a call still streaming past the grace must not keep the process.
        threading.Thread(target=shut_down, name="flight-shutdown", daemon=True).start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), max(grace, 0.1))
        if done.is_set():
            return True
        server.cancel_inflight()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 1.0)
        if not done.is_set():
            log.warning("Arrow Flight calls still running after the grace period")
            _OUTLIVED_STOP.set()
        return done.is_set()
