"""Running services in this process: ``fusou serve`` and ``fusou up``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from fusou.app import PLANNED, SERVICES, build_server
from fusou.auth.tokens import configured_tokens
from fusou.cli.lake import UP_STATE
from fusou.config import Settings
from fusou.memory import keep_freed_memory
from fusou.runtime import open_runtime
from fusou.server.app import FusouServer

log = logging.getLogger(__name__)


def check_services(names: Sequence[str]) -> None:
    """Exits, saying why, unless every one of ``names`` is a service this build hosts."""
    unknown = [n for n in names if n not in SERVICES and n not in PLANNED]
    if unknown:
        raise SystemExit(
            f"unknown service(s): {', '.join(unknown)}; choose from "
            f"{', '.join([*SERVICES, *PLANNED])}"
        )
    planned = [n for n in names if n in PLANNED]
    if planned:
        raise SystemExit(f"service(s) not implemented yet: {', '.join(planned)}")


async def serve(
    settings: Settings,
    names: Sequence[str],
    *,
    on_started: Callable[[FusouServer], None] | None = None,
) -> None:
    keep_freed_memory()
    runtime = await open_runtime(settings)
    try:
        server = build_server(runtime, names)
        await server.start()
        server.install_signal_handlers()
        if on_started is not None:
            on_started(server)
        await server.wait()
    finally:
        await runtime.close()


def default_data_dir(settings: Settings) -> Path:
    if settings.server.data_dir:
        return Path(settings.server.data_dir).expanduser().resolve()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fusou"


def up(settings: Settings) -> int:
    """The whole system on this machine, with embedded defaults for what is not configured."""
    data_dir = default_data_dir(settings)
    embedded = None
    notes: list[str] = []
    if not settings.database.url:
        from fusou.db.embedded import EmbeddedPostgres

        embedded = EmbeddedPostgres(data_dir / "postgres")
        print(f"starting embedded PostgreSQL in {data_dir / 'postgres'} ...", file=sys.stderr)
        settings = settings.replace(database_url=embedded.start())
        notes.append(f"database:     embedded PostgreSQL ({data_dir / 'postgres'})")
    else:
        notes.append("database:     FUSOU_DATABASE_URL")
    if not settings.store.url:
        objects = data_dir / "objects"
        objects.mkdir(parents=True, exist_ok=True)
        settings = settings.replace(object_store_url=f"file://{objects}")
    notes.append(f"object store: {settings.store.url}")
    tokens = configured_tokens(settings)
    notes.append(
        "auth:         off, every client may call every RPC (FUSOU_AUTH_TOKENS turns it on)"
        if tokens is None
        else f"auth:         {len(tokens)} bearer token(s)"
    )
    tls = settings.server.tls_cert_file is not None
    names = list(SERVICES)

    def announce(server: FusouServer) -> None:
        target = f"localhost:{server.port}"
        body = (
            '{"dataset_id":"demo","table":"battle","request_id":"hello-1",'
            '"rows":[{"timestamp":1700000000000,"api_no":1,"hp":42}]}'
        )
        flags = "-cacert CA.pem" if tls else "-plaintext"
        if tokens is not None:
            flags += " -H 'authorization: Bearer TOKEN'"
        lines = [
            f"FUSOU is up on {target}" + (" (TLS)" if tls else ""),
            "services:     " + ", ".join(names),
            f"arrow flight: localhost:{server.flight_port} (bulk reads; `fusou read` uses it)",
            f"dashboard:    http://localhost:{server.metrics_port}/dashboard"
            + ("" if tokens is None else " (sign in with an admin token)"),
            f"metrics:      http://localhost:{server.metrics_port}/metrics",
            *notes,
            "",
            "try:",
            f"  grpcurl {flags} {target} list",
            f"  grpcurl {flags} -d '{body}' {target} fusou.ingest.v1.IngestService/Ingest",
            "  fusou lake    (the Iceberg tables, and how pyiceberg, DuckDB, Spark, Trino read them)",
            "",
            "Ctrl-C stops it.",
        ]
        print("\n".join(lines), flush=True)

    # What commands run beside it (`fusou lake`) read when the variables are unset.
    state = data_dir / UP_STATE
    data_dir.mkdir(parents=True, exist_ok=True)
    state.write_text(
        json.dumps({"database_url": settings.database.url, "object_store_url": settings.store.url})
    )
    try:
        asyncio.run(serve(settings, names, on_started=announce))
    finally:
        state.unlink(missing_ok=True)
        if embedded is not None:
            embedded.stop()
    return 0
