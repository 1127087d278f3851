"""Per-table statistics: where the rows are and how well cold files compress."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from fusou.clock import SYSTEM_CLOCK, Clock
from fusou.names import check_name


@dataclass(frozen=True)
class TableStats:
    dataset_id: str
    table: str
    schema_version: int
    hot_rows: int
    hot_bytes: int
    oldest_hot_row_age_s: float
    cold_files: int
    cold_rows: int
    cold_bytes: int
    compression_ratio: float
    raw_fragments: int
    raw_bytes: int
    optimized_files: int
    optimized_bytes: int
    quarantined_rows: int
    raw_rows: int = 0
    optimized_rows: int = 0
    pending_deletions: int = 0

    @property
    def backlog_files(self) -> int:
        """Cold files and raw fragments: what the next compactions read."""
        return self.cold_files + self.raw_fragments

    @property
    def backlog_bytes(self) -> int:
        return self.cold_bytes + self.raw_bytes

    def rows_by_tier(self) -> dict[str, int]:
        return {
            "hot": self.hot_rows,
            "cold": self.cold_rows,
            "raw": self.raw_rows,
            "optimized": self.optimized_rows,
        }

    def bytes_by_tier(self) -> dict[str, int]:
        """Hot: the buffer's Avro datums; the others: the files' stored bytes."""
        return {
            "hot": self.hot_bytes,
            "cold": self.cold_bytes,
            "raw": self.raw_bytes,
            "optimized": self.optimized_bytes,
        }


async def table_stats(
    pool: asyncpg.Pool, dataset_id: str = "", table: str = "", clock: Clock = SYSTEM_CLOCK
) -> list[TableStats]:
    if dataset_id:
        check_name("dataset_id", dataset_id)
    if table:
        check_name("table", table)
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT * FROM fusou_hot_cold_summary "
            "WHERE ($1 = '' OR dataset_id = $1) AND ($2 = '' OR table_name = $2) "
            "ORDER BY dataset_id, table_name",
            dataset_id,
            table,
        )
    now = clock.now_ms()
    return [
        TableStats(
            dataset_id=r["dataset_id"],
            table=r["table_name"],
            schema_version=r["latest_version"],
            hot_rows=r["hot_rows"],
            hot_bytes=r["hot_bytes"],
            oldest_hot_row_age_s=(
                0.0
                if r["oldest_hot_ingested_at"] is None
                else max(0.0, (now - r["oldest_hot_ingested_at"]) / 1000)
            ),
            cold_files=r["cold_files"],
            cold_rows=r["cold_rows"],
            cold_bytes=r["cold_bytes"],
            compression_ratio=(
                r["cold_uncompressed_bytes"] / r["cold_bytes"] if r["cold_bytes"] else 0.0
            ),
            raw_fragments=r["raw_fragments"],
            raw_bytes=r["raw_bytes"],
            optimized_files=r["optimized_files"],
            optimized_bytes=r["optimized_bytes"],
            quarantined_rows=r["quarantined_rows"],
            raw_rows=r["raw_rows"],
            optimized_rows=r["optimized_rows"],
            pending_deletions=r["pending_deletions"],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class DatasetFlags:
    """A dataset's compaction flags (the seed's) and whether a purge is under way."""

    dataset_id: str
    compaction_needed: bool
    compaction_in_progress: bool
    last_compacted_at: datetime | None
    purging: bool


async def dataset_flags(pool: asyncpg.Pool) -> list[DatasetFlags]:
    rows = await pool.fetch(
        "SELECT dataset_id, compaction_needed, compaction_in_progress, last_compacted_at, "
        "purging FROM fusou_datasets ORDER BY dataset_id"
    )
    return [
        DatasetFlags(
            r["dataset_id"],
            r["compaction_needed"],
            r["compaction_in_progress"],
            r["last_compacted_at"],
            r["purging"],
        )
        for r in rows
    ]
