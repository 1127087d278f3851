"""The server plumbing end to end, through real grpc.aio servers and channels: health, reflection,
graceful shutdown (in process and on SIGTERM), the error-mapping interceptor, undecodable requests
and message size limits.

Most tests host a small test-only servicer on raw bytes (``Probe``) in a ``FusouServer``, so they
exercise exactly what every FUSOU service gets (interceptor, health, reflection, shutdown) without
a database; the health/reflection/decoding tests run against the real ingest service.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, struct_pb2
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fusou import errors
from fusou.api.ingest.v1 import ingest_pb2
from fusou.config import ConfigError, Settings
from fusou.server.app import FusouServer, HostedService
from fusou.server.status import bad_request_fields, map_exception
from fusou.testing import ServicesUnderTest

INGEST_SERVICE = "fusou.ingest.v1.IngestService"
HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICE = "grpc.reflection.v1alpha.ServerReflection"
PROBE_SERVICE = "fusou.test.v1.ProbeService"

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

# Bounds on waits for things that should happen at once; they only keep a broken server from
# hanging the suite, nothing asserts on durations.
BOUND_S = 30.0
NEW_CALL_DEADLINE_S = 2.0  # an echo is instant: past this, the call was not served

Context = aio.ServicerContext[Any, Any]

# ---------------------------------------------------------------------------------------------
# A test-only servicer on raw bytes, hosted like any FUSOU service.
# ---------------------------------------------------------------------------------------------

SECRET = "password=hunter2 at db.internal"

# request payload -> (exception to raise, status code the client must see)
ERRORS: dict[str, tuple[Callable[[], BaseException], grpc.StatusCode]] = {
    "invalid_argument": (
        lambda: errors.InvalidArgument("rows[3].timestamp", "must be an integer"),
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    "not_found": (lambda: errors.NotFound("no table battle"), grpc.StatusCode.NOT_FOUND),
    "already_exists": (
        lambda: errors.AlreadyExists("table exists"),
        grpc.StatusCode.ALREADY_EXISTS,
    ),
    "failed_precondition": (
        lambda: errors.FailedPrecondition("declare the table first"),
        grpc.StatusCode.FAILED_PRECONDITION,
    ),
    "aborted": (lambda: errors.Aborted("archive already running"), grpc.StatusCode.ABORTED),
    "resource_exhausted": (
        lambda: errors.ResourceExhausted("batch too large"),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ),
    "unavailable": (
        lambda: errors.Unavailable("database unreachable"),
        grpc.StatusCode.UNAVAILABLE,
    ),
    "deadline_exceeded": (
        lambda: errors.DeadlineExceeded("compaction timed out"),
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ),
    "runtime_error": (lambda: RuntimeError(SECRET), grpc.StatusCode.INTERNAL),
    "key_error": (lambda: KeyError(SECRET), grpc.StatusCode.INTERNAL),
    "empty_value_error": (ValueError, grpc.StatusCode.INTERNAL),
    "not_implemented": (
        lambda: NotImplementedError("UploadRaw is not implemented yet"),
        grpc.StatusCode.UNIMPLEMENTED,
    ),
}


def _raise_for(request: bytes) -> BaseException:
    make, _ = ERRORS[request.decode()]
    return make()


class Probe:
    """Handlers of every RPC shape that block, echo, write or raise, as the request says."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.block_finished = False
        self.closed = False
        self.closed_after_in_flight_call = False

    async def block(self, request: bytes, context: Context) -> bytes:
        self.entered.set()
        await self.release.wait()
        self.block_finished = True
        return b"finished:" + request

    async def echo(self, request: bytes, context: Context) -> bytes:
        if request.startswith(b"reply-size:"):
            return b"r" * int(request.removeprefix(b"reply-size:"))
        return b"echo:%d" % len(request)

    async def fail(self, request: bytes, context: Context) -> bytes:
        raise _raise_for(request)

    async def fail_mid_stream(self, request: bytes, context: Context) -> AsyncIterator[bytes]:
        yield b"first"
        raise _raise_for(request)

    async def write_stream(self, request: bytes, context: Context) -> None:
        # The reader/writer style of grpc.aio (what grpc's own health Watch uses).
        for part in request.split(b","):
            await context.write(part)

    async def echo_bidi(self, requests: AsyncIterator[bytes], context: Context) -> None:
        # Reader/writer style for both directions.
        while (request := await context.read()) is not aio.EOF:
            assert isinstance(request, bytes)
            await context.write(request.upper())

    async def fail_after_reading(self, requests: AsyncIterator[bytes], context: Context) -> bytes:
        last = b""
        async for request in requests:
            last = request
        raise _raise_for(last)

    async def fail_bidi(
        self, requests: AsyncIterator[bytes], context: Context
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            yield b"ack"
            raise _raise_for(request)

    async def close(self) -> None:
        self.closed = True
        self.closed_after_in_flight_call = self.block_finished

    def hosted(self) -> HostedService:
        # grpc's handler types describe sync behaviours; under grpc.aio they are coroutines.
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "Block": grpc.unary_unary_rpc_method_handler(self.block),
            "Echo": grpc.unary_unary_rpc_method_handler(self.echo),
            "Fail": grpc.unary_unary_rpc_method_handler(self.fail),
            "FailMidStream": grpc.unary_stream_rpc_method_handler(self.fail_mid_stream),
            "WriteStream": grpc.unary_stream_rpc_method_handler(self.write_stream),
            "EchoBidi": grpc.stream_stream_rpc_method_handler(self.echo_bidi),
            "FailAfterReading": grpc.stream_unary_rpc_method_handler(self.fail_after_reading),
            "FailBidi": grpc.stream_stream_rpc_method_handler(self.fail_bidi),
        }
        generic = grpc.method_handlers_generic_handler(PROBE_SERVICE, handlers)
        return HostedService(
            full_name=PROBE_SERVICE,
            add_to_server=lambda server: server.add_generic_rpc_handlers((generic,)),
            close=self.close,
        )


@asynccontextmanager
async def hosting(probe: Probe, **settings: Any) -> AsyncIterator[tuple[FusouServer, aio.Channel]]:
    config = (
        Settings().replace(grpc_host="127.0.0.1", grpc_port=0, metrics_port=0).replace(**settings)
    )
    server = FusouServer(config, [probe.hosted()])
    await server.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            yield server, channel
    finally:
        probe.release.set()
        await asyncio.wait_for(server.stop(grace=0), BOUND_S)


def probe_method(name: str) -> str:
    return f"/{PROBE_SERVICE}/{name}"


def _identity(data: bytes) -> bytes:
    return data


# Raw-bytes stubs: identity serializers on both sides.
def unary_unary(channel: aio.Channel, method: str) -> aio.UnaryUnaryMultiCallable[bytes, bytes]:
    return channel.unary_unary(method, _identity, _identity)


def unary_stream(channel: aio.Channel, method: str) -> aio.UnaryStreamMultiCallable[bytes, bytes]:
    return channel.unary_stream(method, _identity, _identity)


def stream_unary(channel: aio.Channel, method: str) -> aio.StreamUnaryMultiCallable[bytes, bytes]:
    return channel.stream_unary(method, _identity, _identity)


def stream_stream(channel: aio.Channel, method: str) -> aio.StreamStreamMultiCallable[bytes, bytes]:
    return channel.stream_stream(method, _identity, _identity)


def status_details(err: aio.AioRpcError) -> status_pb2.Status:
    """The google.rpc.Status in the trailers; it must agree with the call's own status."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            assert isinstance(value, bytes)
            status = status_pb2.Status.FromString(value)
            assert status.code == err.code().value[0]
            assert status.message == err.details()
            return status
    raise AssertionError(f"no grpc-status-details-bin in the trailers of {err!r}")


def assert_mapped(err: aio.AioRpcError, kind: str) -> None:
    _, expected = ERRORS[kind]
    assert err.code() is expected, (err.code(), err.details())
    assert err.code() is not grpc.StatusCode.UNKNOWN
    details = err.details() or ""
    assert SECRET not in details, f"the exception text leaked to the client: {details!r}"
    status = status_details(err)
    if kind == "invalid_argument":
        assert bad_request_fields(status) == ["rows[3].timestamp"]
        assert "must be an integer" in details
    else:
        assert bad_request_fields(status) == []
    if expected is grpc.StatusCode.INTERNAL:
        assert "internal error" in details


# ---------------------------------------------------------------------------------------------
# Health and reflection on the real ingest service.
# ---------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("service", ["", INGEST_SERVICE])
async def test_health_check_answers_serving(channel: aio.Channel, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=BOUND_S)
    assert response.status == SERVING


@pytest.mark.integration
async def test_health_check_of_an_unknown_service_is_not_found(channel: aio.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.Check(
            health_pb2.HealthCheckRequest(service="fusou.nope.v1.NopeService"), timeout=BOUND_S
        )
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


@pytest.mark.integration
async def test_health_watch_streams_the_current_status(channel: aio.Channel) -> None:
    # Watch is what load balancers and `grpc_health_probe -watch` use; it is a reader/writer
    # style streaming handler and must survive the error-mapping interceptor.
    stub = health_pb2_grpc.HealthStub(channel)
    call = stub.Watch(health_pb2.HealthCheckRequest(service=INGEST_SERVICE))
    try:
        first = await asyncio.wait_for(call.read(), BOUND_S)
    except aio.AioRpcError as exc:
        pytest.fail(f"health Watch failed: {exc.code().name}: {exc.details()}")
    finally:
        call.cancel()
    assert first.status == SERVING


async def _reflection_ask(channel: aio.Channel, request: Any) -> Any:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    call = stub.ServerReflectionInfo()
    await call.write(request)
    await call.done_writing()
    response = await asyncio.wait_for(call.read(), BOUND_S)
    assert not response.HasField("error_response"), response.error_response
    return response


@pytest.mark.integration
async def test_reflection_lists_ingest_health_and_reflection(channel: aio.Channel) -> None:
    response = await _reflection_ask(
        channel, reflection_pb2.ServerReflectionRequest(list_services="")
    )
    names = {s.name for s in response.list_services_response.service}
    assert {INGEST_SERVICE, HEALTH_SERVICE, REFLECTION_SERVICE} <= names, names


@pytest.mark.integration
async def test_reflection_describes_the_ingest_service(channel: aio.Channel) -> None:
    # What `grpcurl describe` needs: the file declaring the service, with its methods.
    response = await _reflection_ask(
        channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=INGEST_SERVICE)
    )
    services: dict[str, set[str]] = {}
    for raw in response.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        for service in proto.service:
            services[f"{proto.package}.{service.name}"] = {m.name for m in service.method}
    assert {"Ingest", "UploadRaw"} <= services.get(INGEST_SERVICE, set()), services


V1_REFLECTION_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


async def _v1_reflection_ask(channel: aio.Channel, request: Any) -> Any:
    # The v1 protocol's messages are v1alpha's field for field (only the package differs), so
    # v1alpha's classes write and read v1 calls; the method path is what makes this v1.
    call = channel.stream_stream(
        V1_REFLECTION_METHOD,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )()
    await call.write(request)
    await call.done_writing()
    response: Any = await asyncio.wait_for(call.read(), BOUND_S)
    assert not response.HasField("error_response"), response.error_response
    return response


@pytest.mark.integration
async def test_reflection_v1_lists_the_services(channel: aio.Channel) -> None:
    response = await _v1_reflection_ask(
        channel, reflection_pb2.ServerReflectionRequest(list_services="")
    )
    names = {s.name for s in response.list_services_response.service}
    assert {
        INGEST_SERVICE,
        HEALTH_SERVICE,
        REFLECTION_SERVICE,
        "grpc.reflection.v1.ServerReflection",
    } <= names, names


@pytest.mark.integration
async def test_reflection_v1_describes_services_and_itself(channel: aio.Channel) -> None:
    described: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for symbol in (INGEST_SERVICE, "grpc.reflection.v1.ServerReflection"):
        response = await _v1_reflection_ask(
            channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
        )
        raw = response.file_descriptor_response.file_descriptor_proto[0]
        described[symbol] = descriptor_pb2.FileDescriptorProto.FromString(raw)
    assert "Ingest" in {m.name for m in described[INGEST_SERVICE].service[0].method}
    v1 = described["grpc.reflection.v1.ServerReflection"]
    assert (v1.name, v1.package) == ("grpc/reflection/v1/reflection.proto", "grpc.reflection.v1")
    (method,) = v1.service[0].method
    assert (method.name, method.input_type, method.output_type) == (
        "ServerReflectionInfo",
        ".grpc.reflection.v1.ServerReflectionRequest",
        ".grpc.reflection.v1.ServerReflectionResponse",
    )
    assert method.client_streaming and method.server_streaming
    # Every field type the v1 file names is one of its own messages.
    own = {f".grpc.reflection.v1.{m.name}" for m in v1.message_type}
    named = {f.type_name for m in v1.message_type for f in m.field if f.type_name}
    assert named and named <= own, named - own


# ---------------------------------------------------------------------------------------------
# Graceful shutdown.
# ---------------------------------------------------------------------------------------------


async def _until_refused(channel: aio.Channel) -> aio.AioRpcError:
    """New calls while the server stops: retried briefly until the server refuses one."""
    echo = unary_unary(channel, probe_method("Echo"))
    for _ in range(200):
        try:
            await echo(b"new call", timeout=NEW_CALL_DEADLINE_S)
        except aio.AioRpcError as exc:
            return exc
        await asyncio.sleep(0.01)
    raise AssertionError("the stopping server kept accepting new calls")


async def test_graceful_shutdown_refuses_new_calls_and_finishes_in_flight_ones() -> None:
    probe = Probe()
    async with hosting(probe) as (server, channel):
        in_flight = unary_unary(channel, probe_method("Block"))(b"job-1", timeout=BOUND_S)
        await asyncio.wait_for(probe.entered.wait(), BOUND_S)

        # A grace longer than anything the test waits for: the test releases the call; were the
        # grace to run out first (a loaded machine), stop() would cancel it and close services.
        stopping = asyncio.create_task(server.stop(grace=BOUND_S))
        refused = await _until_refused(channel)
        # Refused at connect time: UNAVAILABLE. A call that raced the shutdown into the transport
        # is never handed to a handler: grpc core cancels it when the server has stopped
        # (CANCELLED), and until then it waits, unserved, for its deadline (DEADLINE_EXCEEDED).
        assert refused.code() in {
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.CANCELLED,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        }, (refused.code(), refused.details())
        assert not stopping.done(), "stop() returned while a call was still in flight"
        assert not probe.closed, "services were closed while a call was still in flight"

        probe.release.set()
        assert await in_flight == b"finished:job-1"
        assert await in_flight.code() is grpc.StatusCode.OK
        await asyncio.wait_for(stopping, BOUND_S)
        await asyncio.wait_for(server.wait(), BOUND_S)
    assert probe.closed and probe.closed_after_in_flight_call


async def test_graceful_shutdown_turns_health_not_serving_for_watchers() -> None:
    # Once stop() runs, new calls (Check included) are refused; what a client still connected
    # sees is its Watch stream switching to NOT_SERVING while in-flight calls finish.
    probe = Probe()
    async with hosting(probe) as (server, channel):
        health = health_pb2_grpc.HealthStub(channel)
        watchers = {
            name: health.Watch(health_pb2.HealthCheckRequest(service=name))
            for name in ("", PROBE_SERVICE)
        }
        in_flight = unary_unary(channel, probe_method("Block"))(b"job-2", timeout=BOUND_S)
        try:
            for name, watch in watchers.items():
                first = await asyncio.wait_for(watch.read(), BOUND_S)
                assert first.status == SERVING, name
            await asyncio.wait_for(probe.entered.wait(), BOUND_S)

            stopping = asyncio.create_task(server.stop(grace=BOUND_S))  # outlasts the test
            for name, watch in watchers.items():
                update = await asyncio.wait_for(watch.read(), BOUND_S)
                assert update.status == NOT_SERVING, name
            assert not probe.block_finished and not stopping.done()
        except aio.AioRpcError as exc:
            pytest.fail(f"health Watch failed: {exc.code().name}: {exc.details()}")
        finally:
            for watch in watchers.values():
                watch.cancel()
        probe.release.set()
        assert await in_flight == b"finished:job-2"
        await asyncio.wait_for(stopping, BOUND_S)


async def test_concurrent_stops_drain_once_and_close_services_once() -> None:
    # SIGTERM then SIGINT (or a signal racing a caller's stop()) must not run the close hooks
    # twice; the second stop() waits for the first.
    closes = 0

    async def close() -> None:
        nonlocal closes
        closes += 1
        await asyncio.sleep(0)

    probe = Probe()
    hosted = dataclasses.replace(probe.hosted(), close=close)
    server = FusouServer(
        Settings().replace(grpc_host="127.0.0.1", grpc_port=0, metrics_port=0), [hosted]
    )
    await server.start()
    await asyncio.wait_for(asyncio.gather(server.stop(grace=1), server.stop(grace=1)), BOUND_S)
    assert closes == 1


async def test_stop_returns_when_start_never_happened_or_failed() -> None:
    # running_services() and `fusou serve` call stop() in a finally: it must not hang when
    # start() failed (here: the port is taken) or was never called.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = FusouServer(
            Settings().replace(grpc_host="127.0.0.1", grpc_port=port, metrics_port=0),
            [Probe().hosted()],
        )
        with pytest.raises(ConfigError, match="FUSOU_GRPC_PORT"):
            await server.start()
    await asyncio.wait_for(server.stop(grace=0), 5)
    await asyncio.wait_for(server.wait(), 5)

    never_started = FusouServer(
        Settings().replace(grpc_host="127.0.0.1", grpc_port=0, metrics_port=0), []
    )
    await asyncio.wait_for(never_started.stop(), 5)


@pytest.mark.integration
async def test_sigterm_stops_fusou_serve_with_exit_code_0(
    database_url: str, tmp_path: Path
) -> None:
    objects = tmp_path / "objects"
    objects.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSOU_")}
    env.update(
        FUSOU_DATABASE_URL=database_url,
        FUSOU_OBJECT_STORE_URL=f"file://{objects}",
        FUSOU_GRPC_HOST="127.0.0.1",
        FUSOU_GRPC_PORT="0",
        FUSOU_METRICS_PORT="0",
        FUSOU_SHUTDOWN_GRACE_S="5",
    )
    fusou = Path(sys.executable).parent / "fusou"
    log = tmp_path / "stderr.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            str(fusou),
            "serve",
            "ingest",
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        found = re.search(rb"listening on port (\d+)", line)
        assert found, f"unexpected first line {line!r}; stderr:\n{log.read_text()}"
        port = int(found[1])

        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("", INGEST_SERVICE):
                response = await health.Check(
                    health_pb2.HealthCheckRequest(service=service),
                    timeout=BOUND_S,
                    wait_for_ready=True,
                )
                assert response.status == SERVING

        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), BOUND_S)
        assert code == 0, f"exit code {code}; stderr:\n{log.read_text()}"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# ---------------------------------------------------------------------------------------------
# Error mapping through the interceptor.
# ---------------------------------------------------------------------------------------------


@pytest.fixture
async def probe_channel() -> AsyncIterator[aio.Channel]:
    async with hosting(Probe()) as (_, channel):
        yield channel


@pytest.mark.parametrize("kind", list(ERRORS))
async def test_unary_errors_are_mapped(probe_channel: aio.Channel, kind: str) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await unary_unary(probe_channel, probe_method("Fail"))(kind.encode(), timeout=BOUND_S)
    assert_mapped(caught.value, kind)


@pytest.mark.parametrize("kind", ["invalid_argument", "aborted", "runtime_error"])
async def test_unary_stream_errors_mid_stream_are_mapped(
    probe_channel: aio.Channel, kind: str
) -> None:
    call = unary_stream(probe_channel, probe_method("FailMidStream"))(
        kind.encode(), timeout=BOUND_S
    )
    assert await call.read() == b"first"
    with pytest.raises(aio.AioRpcError) as caught:
        await call.read()
    assert_mapped(caught.value, kind)


@pytest.mark.parametrize("kind", ["invalid_argument", "unavailable", "runtime_error"])
async def test_stream_unary_errors_are_mapped(probe_channel: aio.Channel, kind: str) -> None:
    async def requests() -> AsyncIterator[bytes]:
        yield b"chunk"
        yield kind.encode()

    with pytest.raises(aio.AioRpcError) as caught:
        await stream_unary(probe_channel, probe_method("FailAfterReading"))(
            requests(), timeout=BOUND_S
        )
    assert_mapped(caught.value, kind)


@pytest.mark.parametrize("kind", ["not_found", "runtime_error"])
async def test_stream_stream_errors_are_mapped(probe_channel: aio.Channel, kind: str) -> None:
    call = stream_stream(probe_channel, probe_method("FailBidi"))(timeout=BOUND_S)
    await call.write(kind.encode())
    assert await call.read() == b"ack"
    with pytest.raises(aio.AioRpcError) as caught:
        await call.read()
    assert_mapped(caught.value, kind)


async def test_reader_writer_style_streaming_handlers_work(probe_channel: aio.Channel) -> None:
    call = unary_stream(probe_channel, probe_method("WriteStream"))(b"a,b,c", timeout=BOUND_S)
    try:
        received = [message async for message in call]
    except aio.AioRpcError as exc:
        pytest.fail(f"a context.write() handler failed: {exc.code().name}: {exc.details()}")
    assert received == [b"a", b"b", b"c"]
    assert await call.code() is grpc.StatusCode.OK

    bidi = stream_stream(probe_channel, probe_method("EchoBidi"))(timeout=BOUND_S)
    try:
        for word in (b"x", b"y"):
            await bidi.write(word)
            assert await bidi.read() == word.upper()
        await bidi.done_writing()
        assert await bidi.read() is aio.EOF
    except aio.AioRpcError as exc:
        pytest.fail(f"a context.read()/write() handler failed: {exc.code().name}: {exc.details()}")
    assert await bidi.code() is grpc.StatusCode.OK


# ---------------------------------------------------------------------------------------------
# Undecodable requests to the real ingest service.
# ---------------------------------------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


# A Struct whose first map entry (field 1, length-delimited) has a truncated length varint.
NOT_A_STRUCT = b"\x0a\xff"


@pytest.mark.integration
@pytest.mark.parametrize("bad_index", [0, 2])
async def test_undecodable_row_is_invalid_argument_naming_it(
    services: ServicesUnderTest, channel: aio.Channel, bad_index: int
) -> None:
    good = struct_pb2.Struct()
    good.update({"timestamp": 1_700_000_000_000, "hp": 42})
    rows = [good.SerializeToString()] * 3
    rows[bad_index] = NOT_A_STRUCT
    body = _length_delimited(1, b"demo") + _length_delimited(2, b"battle")
    body += b"".join(_length_delimited(4, row) for row in rows)
    with pytest.raises(DecodeError):  # the bytes really are not an IngestRequest
        ingest_pb2.IngestRequest.FromString(body)

    ingest = unary_unary(channel, f"/{INGEST_SERVICE}/Ingest")
    with pytest.raises(aio.AioRpcError) as caught:
        await ingest(body, timeout=BOUND_S)
    err = caught.value
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert bad_request_fields(status_details(err)) == [f"rows[{bad_index}]"]
    assert f"rows[{bad_index}]" in (err.details() or "")
    # Nothing was written: no rows, no table, no dataset.
    pool = services.runtime.pool
    assert await pool.fetchval("SELECT count(*) FROM fusou_buffer") == 0
    assert await pool.fetchval("SELECT count(*) FROM fusou_tables") == 0
    assert await pool.fetchval("SELECT count(*) FROM fusou_datasets") == 0

    # The server still serves well-formed requests afterwards.
    good_request = ingest_pb2.IngestRequest(dataset_id="demo", table="battle", rows=[good])
    reply = ingest_pb2.IngestResponse.FromString(
        await ingest(good_request.SerializeToString(), timeout=BOUND_S)
    )
    assert reply.rows_written == 1
    assert reply.first_seq == reply.last_seq
    assert await pool.fetchval("SELECT count(*) FROM fusou_buffer") == 1


@pytest.mark.integration
async def test_undecodable_string_field_is_invalid_argument_naming_it(
    services: ServicesUnderTest, channel: aio.Channel
) -> None:
    # proto3 strings must be UTF-8; the parser rejects the whole message, and the answer must
    # still say which field was wrong.
    body = _length_delimited(1, b"demo\xff\xfe") + _length_delimited(2, b"battle")
    with pytest.raises(DecodeError):
        ingest_pb2.IngestRequest.FromString(body)
    with pytest.raises(aio.AioRpcError) as caught:
        await unary_unary(channel, f"/{INGEST_SERVICE}/Ingest")(body, timeout=BOUND_S)
    err = caught.value
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert bad_request_fields(status_details(err)) == ["dataset_id"]


def test_thousands_of_long_violations_fit_in_the_trailers() -> None:
    # gRPC clients refuse trailers over 8 KiB; an answer listing every problem of a huge
    # request whole would reach them as RESOURCE_EXHAUSTED, naming nothing.
    violations = [
        errors.FieldViolation(f"rows[{i}].{'n' * 5000}", "é" * 5000) for i in range(10_000)
    ]
    mapped = map_exception(errors.InvalidArgument.many(violations))
    assert mapped.code is grpc.StatusCode.INVALID_ARGUMENT
    fields = bad_request_fields(mapped.status)
    assert 0 < len(fields) <= errors.MAX_VIOLATIONS
    assert all(f.startswith(f"rows[{i}].nnn") for i, f in enumerate(fields))
    assert "(and 9992 more problems)" in mapped.message
    size = sum(len(key) + len(value) for key, value in mapped.trailing_metadata)
    assert size * 4 // 3 + len(mapped.message.encode()) * 3 < 8 * 1024


# ---------------------------------------------------------------------------------------------
# Message size limits.
# ---------------------------------------------------------------------------------------------

LIMIT = 64 * 1024


async def test_requests_over_the_message_limit_are_resource_exhausted() -> None:
    async with hosting(Probe(), grpc_max_message_bytes=LIMIT) as (_, channel):
        echo = unary_unary(channel, probe_method("Echo"))
        assert await echo(b"x" * (LIMIT // 2), timeout=BOUND_S) == b"echo:%d" % (LIMIT // 2)
        with pytest.raises(aio.AioRpcError) as caught:
            await echo(b"x" * (LIMIT + 1024), timeout=BOUND_S)
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, (
            caught.value.code(),
            caught.value.details(),
        )
        # The server is still fine afterwards.
        assert await echo(b"small", timeout=BOUND_S) == b"echo:5"


async def test_replies_over_the_message_limit_are_not_unknown() -> None:
    async with hosting(Probe(), grpc_max_message_bytes=LIMIT) as (_, channel):
        echo = unary_unary(channel, probe_method("Echo"))
        with pytest.raises(aio.AioRpcError) as caught:
            await echo(b"reply-size:%d" % (LIMIT + 1024), timeout=BOUND_S)
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED, (
            caught.value.code(),
            caught.value.details(),
        )
