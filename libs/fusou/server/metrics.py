"""Prometheus metrics of a service process, served over HTTP on FUSOU_METRICS_PORT
(``fusou.server.http``).

One registry per process, shared by every service it hosts. RPC counts, latencies and status
codes are recorded by the server's outermost interceptor (``fusou.server.observing``); the servicers record what their calls did (rows
ingested, archived, quarantined and compacted, tables that failed, reader cache hits and GETs);
the buffer's depth, the age of its oldest row, the quarantine's size, the per-table series
and the last successful runs are refreshed from PostgreSQL every FUSOU_METRICS_INTERVAL_S.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fusou.catalog.runs import RunKind, last_successful
from fusou.catalog.stats import TableStats, table_stats
from fusou.errors import FusouError

log = logging.getLogger(__name__)

_STARTED = time.time()

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
READY = Gauge(
    "fusou_ready",
    "1 while the process's dependencies (PostgreSQL, the object store) answer its readiness "
    "check, 0 while they do not.",
    registry=REGISTRY,
)
LAST_SUCCESSFUL_RUN = Gauge(
    "fusou_last_successful_run_timestamp_seconds",
    "When an Archive or Compact run last ended without failing (some failed tables make it "
    "partial, not failed), by kind; until one has, when this process started, so that "
    "'too long ago' also covers runs that never succeeded.",
    ["kind"],
    registry=REGISTRY,
)

# The per-table series: one label set per table up to FUSOU_METRICS_TABLE_SERIES, ranked by
# rows stored; the rest are summed into one label set, so the series grow with that setting,
# not with the tables.
# Not a valid name (fusou.names), so no table can be mistaken for the rest.
OTHER = "(other)"
TIERS = ("hot", "cold", "raw", "optimized", "quarantined")


def _rows(t: TableStats) -> dict[str, int]:
    return {**t.rows_by_tier(), "quarantined": t.quarantined_rows}


@dataclass(frozen=True)
class _TableFigures:
    rows: dict[str, int]
    bytes: dict[str, int]
    oldest_hot_age_s: float
    backlog_files: int
    pending_deletions: int


class TableSeries(Collector):
    """``fusou_table_*`` gauges from the last refresh (``update``); a table gone since then
    is gone from the next scrape."""

    def __init__(self) -> None:
        self._figures: dict[tuple[str, str], _TableFigures] = {}
        self._lock = threading.Lock()

    def update(self, stats: list[TableStats], limit: int) -> None:
        ranked = sorted(stats, key=lambda t: (-sum(_rows(t).values()), t.dataset_id, t.table))
        figures: dict[tuple[str, str], _TableFigures] = {}
        for t in ranked[:limit]:
            figures[t.dataset_id, t.table] = _TableFigures(
                _rows(t),
                t.bytes_by_tier(),
                t.oldest_hot_row_age_s,
                t.backlog_files,
                t.pending_deletions,
            )
        rest = ranked[limit:]
        if rest:
            figures[OTHER, OTHER] = _TableFigures(
                {k: sum(_rows(t)[k] for t in rest) for k in TIERS},
                {k: sum(t.bytes_by_tier()[k] for t in rest) for k in rest[0].bytes_by_tier()},
                max(t.oldest_hot_row_age_s for t in rest),
                sum(t.backlog_files for t in rest),
                sum(t.pending_deletions for t in rest),
            )
        with self._lock:
            self._figures = figures

    def describe(self) -> list[GaugeMetricFamily]:
        return []

    def collect(self) -> list[GaugeMetricFamily]:
        return self.collect_for(lambda _dataset: True, sees_all=True)

    def collect_for(
        self, may_see: Callable[[str], bool], *, sees_all: bool
    ) -> list[GaugeMetricFamily]:
        """The series of the datasets ``may_see`` admits; the rest's sum only with
        ``sees_all`` (it mixes every dataset)."""
        with self._lock:
            figures = {
                key: f
                for key, f in self._figures.items()
                if (sees_all if key == (OTHER, OTHER) else may_see(key[0]))
            }
        labels = ["dataset", "table"]
        rows = GaugeMetricFamily(
            "fusou_table_rows", "Rows of a table by tier.", labels=[*labels, "tier"]
        )
        stored = GaugeMetricFamily(
            "fusou_table_bytes",
            "Bytes a table's rows take by tier (hot: the buffer's Avro datums).",
            labels=[*labels, "tier"],
        )
        age = GaugeMetricFamily(
            "fusou_table_oldest_hot_row_age_seconds",
            "Age of a table's oldest hot row (0 when none).",
            labels=labels,
        )
        backlog = GaugeMetricFamily(
            "fusou_table_compaction_backlog_files",
            "A table's cold files and raw fragments, waiting to be compacted.",
            labels=labels,
        )
        deletions = GaugeMetricFamily(
            "fusou_table_pending_deletions",
            "A table's deletions waiting for compaction to rewrite their files.",
            labels=labels,
        )
        for (dataset, table), f in figures.items():
            for tier, value in f.rows.items():
                rows.add_metric([dataset, table, tier], value)
            for tier, value in f.bytes.items():
                stored.add_metric([dataset, table, tier], value)
            age.add_metric([dataset, table], f.oldest_hot_age_s)
            backlog.add_metric([dataset, table], f.backlog_files)
            deletions.add_metric([dataset, table], f.pending_deletions)
        return [rows, stored, age, backlog, deletions]


# Not on REGISTRY: they name datasets, so when tokens are configured they are served behind
# them, on /metrics/tables (fusou.server.http).
TABLES = TableSeries()
# Who may read them: who may call GetStats, which answers the same figures.
TABLES_RULE = "/fusou.reader.v1.ReaderService/GetStats"


async def every(interval: float, refresh: Callable[[], Awaitable[None]]) -> None:
    """``refresh()`` now and every ``interval`` seconds (until cancelled); failures are
    logged, and the gauges keep their last values."""
    while True:
        try:
            await refresh()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, FusouError) as exc:
            log.debug("gauges not refreshed: %s", exc)
        await asyncio.sleep(interval)


async def refresh_catalog(pool: asyncpg.Pool, table_series: int) -> None:
    """The buffer's gauges, the per-table series and the last successful runs: what one
    process per deployment exports (they scan the catalog). The buffer's gauges are the
    tables' figures summed: one scan of the buffer serves both."""
    stats = await table_stats(pool)
    BUFFER_ROWS.set(sum(t.hot_rows for t in stats))
    BUFFER_OLDEST_AGE.set(max((t.oldest_hot_row_age_s for t in stats), default=0.0))
    QUARANTINE_ROWS.set(sum(t.quarantined_rows for t in stats))
    TABLES.update(stats, table_series)
    last = await last_successful(pool)
    for kind in RunKind:
        at = last.get(kind)
        LAST_SUCCESSFUL_RUN.labels(kind.value).set(_STARTED if at is None else at.timestamp())
