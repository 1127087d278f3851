"""What operators rely on beyond the RPCs: the drain delay on SIGTERM, the plaintext health port
beside TLS, what the server says at start about authentication, and request ids in the logs
and response headers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fusou.auth.tokens import hash_token
from fusou.config import ConfigError, Settings
from fusou.server.app import FusouServer
from tests.server.test_server import (
    BOUND_S,
    NOT_SERVING,
    SERVING,
    Probe,
    hosting,
    probe_method,
    unary_unary,
)
from tests.support.logs import configured_logs
from tests.support.tls import make_tls_files

ADMIN_TOKEN = "fusou_test_admin_token_0123456789"
ADMIN = json.dumps(
    [{"name": "ops", "sha256": hash_token(ADMIN_TOKEN), "role": "admin", "datasets": ["*"]}]
)


async def test_the_drain_keeps_serving_while_health_says_not_serving() -> None:
    probe = Probe()
    async with hosting(probe, shutdown_drain_s=BOUND_S) as (server, channel):
        health = health_pb2_grpc.HealthStub(channel)
        stopping = asyncio.create_task(server.stop(grace=1))
        for _ in range(500):
            answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=BOUND_S)
            if answer.status == NOT_SERVING:
                break
            await asyncio.sleep(0.01)
        assert answer.status == NOT_SERVING
        # The listener is still open: a new call is served during the drain.
        assert await unary_unary(channel, probe_method("Echo"))(b"abc", timeout=BOUND_S) == (
            b"echo:3"
        )
        assert not stopping.done()
        # A second stop (a second SIGTERM, or Ctrl-C twice) cuts the drain short.
        await asyncio.wait_for(server.stop(), BOUND_S)
        assert stopping.done()
        with pytest.raises(aio.AioRpcError):
            await unary_unary(channel, probe_method("Echo"))(b"late", timeout=2)


async def test_the_health_port_answers_health_alone_in_plaintext_beside_tls(
    tmp_path: Path,
) -> None:
    tls = make_tls_files(tmp_path)
    probe = Probe()
    async with hosting(
        probe, tls_cert_file=str(tls.cert), tls_key_file=str(tls.key), health_port=0
    ) as (server, _):
        assert server.health_port not in (0, server.port)
        async with aio.insecure_channel(f"127.0.0.1:{server.health_port}") as plain:
            health = health_pb2_grpc.HealthStub(plain)
            for service in ("", "readiness"):
                answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert answer.status == SERVING
            with pytest.raises(aio.AioRpcError) as refused:
                await unary_unary(plain, probe_method("Echo"))(b"x", timeout=BOUND_S)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        credentials = grpc.ssl_channel_credentials(root_certificates=tls.ca_pem)
        async with aio.secure_channel(f"127.0.0.1:{server.port}", credentials) as secure:
            assert await unary_unary(secure, probe_method("Echo"))(b"ab", timeout=BOUND_S) == (
                b"echo:2"
            )


async def test_start_says_whether_authentication_is_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fusou.server.app")
    async with hosting(Probe()):
        pass
    assert "authentication is off" in caplog.text
    caplog.clear()
    async with hosting(Probe(), auth_tokens=ADMIN):
        pass
    assert "authentication is on: 1 bearer token(s)" in caplog.text
    assert "bearer tokens travel in clear text" in caplog.text


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    with configured_logs("debug", "json") as stream:
        yield stream


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_request_ids_reach_the_logs_and_the_response_headers(
    json_logs: io.StringIO,
) -> None:
    async with hosting(Probe(), auth_tokens=ADMIN) as (_, channel):
        token = ("authorization", f"Bearer {ADMIN_TOKEN}")
        call = unary_unary(channel, probe_method("Fail"))(
            b"runtime_error", metadata=(token, ("x-request-id", "client-id-1")), timeout=BOUND_S
        )
        with pytest.raises(aio.AioRpcError):
            await call
        assert ("x-request-id", "client-id-1") in tuple(await call.initial_metadata())

        # An id a client could use to forge log lines is replaced by a new one.
        call = unary_unary(channel, probe_method("Echo"))(
            b"x", metadata=(token, ("x-request-id", 'a "b" {}')), timeout=BOUND_S
        )
        assert await call == b"echo:1"
        echoed = dict(await call.initial_metadata())["x-request-id"]
        assert isinstance(echoed, str) and len(echoed) == 32 and echoed.isalnum()

        with pytest.raises(aio.AioRpcError):
            await unary_unary(channel, probe_method("Echo"))(b"x", timeout=BOUND_S)

    records = lines(json_logs)
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    # Logged inside the call (the error mapping), and when the call ended.
    unexpected = [r for r in records if r["message"] == "unexpected error"]
    assert len(unexpected) == 1
    assert unexpected[0]["request_id"] == "client-id-1"
    assert unexpected[0]["principal"] == "ops"
    assert unexpected[0]["method"] == probe_method("Fail")
    assert "RuntimeError" in unexpected[0]["exception"]
    failed = [r for r in records if r["message"].startswith("call failed")]
    assert [(r["request_id"], r["code"], r["level"]) for r in failed][:1] == [
        ("client-id-1", "INTERNAL", "WARNING")
    ]
    assert failed[1]["code"] == "UNAUTHENTICATED" and "principal" not in failed[1]
    finished = [r for r in records if r["message"] == "call finished"]
    assert [(r["request_id"], r["code"], r["principal"]) for r in finished] == [
        (echoed, "OK", "ops")
    ]
    assert finished[0]["duration_ms"] >= 0


async def test_a_certificate_and_a_key_that_do_not_match_are_named(tmp_path: Path) -> None:
    one, other = make_tls_files(tmp_path / "one"), make_tls_files(tmp_path / "other")
    config = (
        Settings()
        .replace(grpc_host="127.0.0.1", grpc_port=0, metrics_port=0)
        .replace(tls_cert_file=str(one.cert), tls_key_file=str(other.key))
    )
    server = FusouServer(config, [Probe().hosted()])
    try:
        with pytest.raises(ConfigError, match="FUSOU_TLS_CERT_FILE and FUSOU_TLS_KEY_FILE"):
            await server.start()
    finally:
        await asyncio.wait_for(server.stop(grace=0), BOUND_S)
