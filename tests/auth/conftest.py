"""The four services over TLS with a token per role and dataset pattern, and clients for them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from fusou.api.archiver.v1 import archiver_pb2_grpc
from fusou.api.compactor.v1 import compactor_pb2_grpc
from fusou.api.ingest.v1 import ingest_pb2_grpc
from fusou.api.reader.v1 import reader_pb2_grpc
from fusou.auth.tokens import hash_token
from fusou.config import Settings
from fusou.testing.services import ServicesUnderTest, running_services
from tests.support.tls import TlsFiles, make_tls_files

# name -> (role, datasets)
TOKENS: dict[str, tuple[str | list[str], list[str]]] = {
    "ingest-demo": ("ingest", ["demo"]),
    "read-demo": ("read", ["demo"]),
    "admin-demo": ("admin", ["demo"]),
    "admin-all": ("admin", ["*"]),
    "writer-team": ("ingest", ["team-*"]),
    "reader-writer-demo": (["ingest", "read"], ["demo"]),
}


def secret(name: str) -> str:
    return f"fusou_test_{name}_0123456789abcdef"


def bearer(name: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {secret(name)}"),)


@dataclass
class Clients:
    services: ServicesUnderTest
    channel: grpc.aio.Channel
    ingest: ingest_pb2_grpc.IngestServiceAsyncStub
    archiver: archiver_pb2_grpc.ArchiverServiceAsyncStub
    compactor: compactor_pb2_grpc.CompactorServiceAsyncStub
    reader: reader_pb2_grpc.ReaderServiceAsyncStub


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path / "tls")


def secured(settings: Settings, tls: TlsFiles) -> Settings:
    entries = [
        {"name": name, "sha256": hash_token(secret(name)), "role": role, "datasets": datasets}
        for name, (role, datasets) in TOKENS.items()
    ]
    return settings.replace(
        tls_cert_file=str(tls.cert),
        tls_key_file=str(tls.key),
        auth_tokens=json.dumps(entries),
        archive_min_age_s=0.0,
    )


@pytest.fixture
async def clients(settings: Settings, tls: TlsFiles) -> AsyncIterator[Clients]:
    async with running_services(
        secured(settings, tls), ["ingest", "archiver", "compactor", "reader"]
    ) as services:
        credentials = grpc.ssl_channel_credentials(root_certificates=tls.ca_pem)
        async with grpc.aio.secure_channel(services.target, credentials) as channel:
            yield Clients(
                services,
                channel,
                ingest_pb2_grpc.IngestServiceStub(channel),
                archiver_pb2_grpc.ArchiverServiceStub(channel),
                compactor_pb2_grpc.CompactorServiceStub(channel),
                reader_pb2_grpc.ReaderServiceStub(channel),
            )
