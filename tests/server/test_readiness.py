"""Readiness end to end: the ``readiness`` health status (and each service's) follows PostgreSQL
and the object store, while the overall status, which liveness probes read, stays SERVING."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fusou.config import Settings
from fusou.server.readiness import READINESS
from fusou.testing import PostgresForTests, running_services

pytestmark = pytest.mark.integration

INGEST = "fusou.ingest.v1.IngestService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# Keeps a broken server from hanging the suite; nothing asserts on durations.
BOUND_S = 30.0


@pytest.fixture
async def health(settings: Settings) -> AsyncIterator[health_pb2_grpc.HealthStub]:
    fast = settings.replace(readiness_interval_s=0.1, readiness_timeout_s=2.0)
    async with (
        running_services(fast) as running,
        grpc.aio.insecure_channel(running.target) as channel,
    ):
        yield health_pb2_grpc.HealthStub(channel)


async def status(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=BOUND_S)
    return int(response.status)


async def until(stub: health_pb2_grpc.HealthStub, service: str, wanted: int) -> None:
    """Watch ``service``'s status until it is ``wanted`` (Watch sends each change)."""
    call = stub.Watch(health_pb2.HealthCheckRequest(service=service), timeout=BOUND_S)
    async for response in call:
        if response.status == wanted:
            call.cancel()
            return
    raise AssertionError(f"{service!r} never became {wanted}")


async def test_ready_when_everything_answers(health: health_pb2_grpc.HealthStub) -> None:
    for service in ("", READINESS, INGEST):
        assert await status(health, service) == SERVING


async def test_readiness_follows_postgresql(
    health: health_pb2_grpc.HealthStub, postgres: PostgresForTests, database_url: str
) -> None:
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(postgres.admin_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await until(health, READINESS, NOT_SERVING)
        assert await status(health, INGEST) == NOT_SERVING
        assert await status(health, "") == SERVING  # alive: a restart would not help
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await until(health, READINESS, SERVING)
        assert await status(health, INGEST) == SERVING
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def test_readiness_follows_the_object_store(
    health: health_pb2_grpc.HealthStub, settings_objects: Path
) -> None:
    moved = replace_with_file(settings_objects)  # nothing could be stored
    try:
        await until(health, READINESS, NOT_SERVING)
        assert await status(health, INGEST) == NOT_SERVING
        assert await status(health, "") == SERVING
    finally:
        restore(settings_objects, moved)
    await until(health, READINESS, SERVING)


def replace_with_file(directory: Path) -> Path:
    moved = directory.with_name(directory.name + "-moved")
    directory.rename(moved)
    directory.write_bytes(b"not a directory")
    return moved


def restore(directory: Path, moved: Path) -> None:
    directory.unlink()
    moved.rename(directory)
