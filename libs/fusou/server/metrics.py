"""Prometheus metrics of a service process, served over HTTP on FUSOU_METRICS_PORT.

One registry per process, shared by every service it hosts. RPC counts, latencies and status
codes are recorded by the server's outermost interceptor (``fusou.server.observing``); the servicers record what their calls did (rows
ingested, archived, quarantined and compacted, tables that failed, reader cache hits and GETs);
the buffer's depth, the age of its oldest row and the quarantine's size are refreshed from
PostgreSQL every FUSOU_METRICS_INTERVAL_S.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from fusou.config import ConfigError
from fusou.errors import FusouError

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
# The process's own series: CPU seconds, resident and virtual memory, open files, start time
# (process_*, from /proc), the interpreter (python_info) and its garbage collector (python_gc_*).
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_RUN_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

RPCS = Counter(
    "fusou_rpc_requests",
    "RPCs finished, by method and status code.",
    ["method", "code"],
    registry=REGISTRY,
)
RPC_SECONDS = Histogram(
    "fusou_rpc_duration_seconds",
    "Time from a call's arrival to its status, by method.",
    ["method"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
INGESTED_ROWS = Counter(
    "fusou_ingested_rows", "Rows written to the buffer by Ingest.", registry=REGISTRY
)
UPLOADED_ROWS = Counter(
    "fusou_uploaded_rows", "Rows registered by UploadRaw as raw fragments.", registry=REGISTRY
)
BUFFER_ROWS = Gauge("fusou_buffer_rows", "Rows in the hot buffer.", registry=REGISTRY)
BUFFER_OLDEST_AGE = Gauge(
    "fusou_buffer_oldest_row_age_seconds",
    "Age of the oldest row in the hot buffer (0 when it is empty).",
    registry=REGISTRY,
)
ARCHIVED_ROWS = Counter("fusou_archived_rows", "Rows moved to cold files.", registry=REGISTRY)
ARCHIVED_BYTES = Counter(
    "fusou_archived_bytes", "Bytes of cold files written by Archive.", registry=REGISTRY
)
QUARANTINED_ROWS = Counter(
    "fusou_quarantined_rows",
    "Buffer rows Archive set aside in the quarantine (their time fits no cold file).",
    registry=REGISTRY,
)
QUARANTINE_ROWS = Gauge(
    "fusou_quarantine_rows",
    "Rows held in the quarantine, waiting for an operator to delete or restore them.",
    registry=REGISTRY,
)
ARCHIVE_FAILED_TABLES = Counter(
    "fusou_archive_failed_tables",
    "Tables whose archive failed (quarantined rows included) in a call that went on.",
    registry=REGISTRY,
)
LAKE_PUBLISHED_TABLES = Counter(
    "fusou_lake_published_tables",
    "Iceberg snapshots committed by Archive calls (one per table whose archived rows changed).",
    registry=REGISTRY,
)
LAKE_FAILED_PUBLICATIONS = Counter(
    "fusou_lake_failed_publications",
    "Archive calls whose publication to the lake failed (the next run publishes).",
    registry=REGISTRY,
)
ARCHIVE_SECONDS = Histogram(
    "fusou_archive_duration_seconds",
    "Duration of Archive calls.",
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
PURGES = Counter(
    "fusou_purges",
    "PurgeDataset calls, by outcome: complete, incomplete (something remained; call again).",
    ["outcome"],
    registry=REGISTRY,
)
PURGED_ROWS = Counter(
    "fusou_purged_rows", "Hot and quarantined rows deleted by PurgeDataset.", registry=REGISTRY
)
PURGED_OBJECTS = Counter(
    "fusou_purged_objects", "Store objects deleted by PurgeDataset.", registry=REGISTRY
)
DELETIONS = Counter(
    "fusou_deletions",
    "Deletions recorded, by reason: delete (DeleteRows), retention (EnforceRetention).",
    ["reason"],
    registry=REGISTRY,
)
DELETED_HOT_ROWS = Counter(
    "fusou_deleted_hot_rows",
    "Hot rows deleted at once by deletions (the rest go when compaction rewrites their files).",
    registry=REGISTRY,
)
RETENTION_FAILED_TABLES = Counter(
    "fusou_retention_failed_tables",
    "Tables whose retention an EnforceRetention call failed to enforce.",
    registry=REGISTRY,
)
COMPACTED_ROWS = Counter(
    "fusou_compacted_rows", "Rows written to optimized files.", registry=REGISTRY
)
COMPACTED_BYTES = Counter(
    "fusou_compacted_bytes", "Bytes of optimized files written by Compact.", registry=REGISTRY
)
COMPACT_FAILED_TABLES = Counter(
    "fusou_compact_failed_tables",
    "Tables whose compaction failed in a call that went on with the others.",
    registry=REGISTRY,
)
COMPACTION_SECONDS = Histogram(
    "fusou_compaction_duration_seconds",
    "Duration of Compact calls.",
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
READER_CACHE_HITS = Counter(
    "fusou_reader_cache_hits", "Cold blocks served from the block cache.", registry=REGISTRY
)
READER_CACHE_MISSES = Counter(
    "fusou_reader_cache_misses", "Cold blocks fetched from the object store.", registry=REGISTRY
)
READER_GETS = Counter(
    "fusou_reader_get_requests", "Ranged GETs issued by reads.", registry=REGISTRY
)


@dataclass
class MetricsHttp:
    server: Any
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(host: str, port: int) -> MetricsHttp:
    """Serve the registry over HTTP (``/metrics``, any path in fact) on a daemon thread."""
    try:
        server, thread = start_http_server(port, addr=host.strip("[]"), registry=REGISTRY)
    except OSError as exc:
        raise ConfigError(f"FUSOU_METRICS_PORT: cannot listen on {host}:{port} ({exc})") from None
    return MetricsHttp(server, thread)


async def every(interval: float, refresh: Callable[[], Awaitable[None]]) -> None:
    """``refresh()`` now and every ``interval`` seconds (until cancelled); failures are
    logged, and the gauges keep their last values."""
    while True:
        try:
            await refresh()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, FusouError) as exc:
            log.debug("gauges not refreshed: %s", exc)
        await asyncio.sleep(interval)


async def refresh_buffer(pool: asyncpg.Pool) -> None:
    row = await pool.fetchrow(
        "SELECT b.rows, b.oldest, (SELECT count(*) FROM fusou_quarantine) AS quarantined "
        "FROM (SELECT count(*) AS rows, min(ingested_at) AS oldest FROM fusou_buffer) b"
    )
    assert row is not None
    BUFFER_ROWS.set(row["rows"])
    oldest = row["oldest"]
    BUFFER_OLDEST_AGE.set(0.0 if oldest is None else max(0.0, time.time() - oldest / 1000))
    QUARANTINE_ROWS.set(row["quarantined"])
