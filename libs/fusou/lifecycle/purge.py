"""PurgeDataset: every row, object and catalog entry of a dataset, gone, verified and audited.

The steps, each idempotent, so that a purge killed anywhere is completed by calling it again
(the audit row in ``fusou_purges`` stays ``running`` until then):

1. mark the dataset ``purging`` (and open the audit row): from then on ingest, uploads and
   table creation refuse it (``fusou.catalog.fence``);
2. per table, holding its archive, compaction and lake locks (so no run of the table is
   writing), and the dataset's fence (so no write that passed it is still uncommitted): delete its hot and quarantined rows, its files and blocks, its lake ledger,
   its schemas and the table itself;
3. delete what belongs to the dataset as a whole: its objects' catalog rows, its stored
   request answers, its Iceberg tables and namespace;
4. delete every object under the dataset's prefixes of the store (raw, cold, optimized, lake),
   and what killed writes left there;
5. verify: count what the database still holds for the dataset and its tables, and list the
   store's prefixes again. Only when nothing remains is the dataset row deleted and the audit
   row marked ``done``, in one transaction.

Catalog rows go before objects: a crash in between leaves unregistered objects, which step 4
of the next call deletes, never a catalog row naming a missing object.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import asyncpg

from fusou.catalog.fence import close_dataset, dataset_key
from fusou.catalog.runs import SCRUBBED_ERROR
from fusou.db.status import rows_affected
from fusou.errors import NotFound
from fusou.jobs import StorageJob
from fusou.names import check_name
from fusou.objectstore.retry import with_retries
from fusou.storage.keys import LAKE, dataset_prefixes, kind_prefix
from fusou.storage.locks import (
    ARCHIVE_LOCK,
    COMPACT_LOCK,
    LAKE_LOCK,
    PURGE_LOCK,
    wait_lock,
)

log = logging.getLogger(__name__)

# Store deletion rounds before the verification reports what is left: a second round takes an
# upload whose object landed while the first one listed (its registration is refused).
STORE_ROUNDS = 2

# The catalog tables whose rows name a table by its id, in an order that respects the foreign
# keys: the purge deletes a table's rows from each, and the verification counts what is left,
# under the kind named here; the audit counts what went of the kinds marked. (Blocks name a
# file, not a table: they go first, by their files.)
_TABLE_ROWS: tuple[tuple[str, str, bool], ...] = (
    ("lake_files", "fusou_lake_files", True),
    ("lake_tables", "fusou_lake_tables", False),
    ("files", "fusou_files", True),
    ("quarantined_rows", "fusou_quarantine", True),
    ("hot_rows", "fusou_buffer", True),
    ("deletions", "fusou_deletions", False),
    ("schemas", "fusou_table_schemas", False),
    ("tables", "fusou_tables", True),
)
_DATASET_REMAINS = (
    ("tables", "SELECT count(*) FROM fusou_tables WHERE dataset_id = $1"),
    ("objects", "SELECT count(*) FROM fusou_objects WHERE dataset_id = $1"),
    ("request_ids", "SELECT count(*) FROM fusou_ingest_requests WHERE dataset_id = $1"),
    ("upload_request_ids", "SELECT count(*) FROM fusou_upload_requests WHERE dataset_id = $1"),
    ("runs", "SELECT count(*) FROM fusou_runs WHERE $1 = ANY(datasets)"),
)
_ICEBERG_REMAINS = (
    (
        "iceberg_tables",
        "SELECT count(*) FROM iceberg_tables WHERE table_namespace = $1 AND catalog_name = $2",
    ),
    (
        "iceberg_namespaces",
        "SELECT count(*) FROM iceberg_namespace_properties "
        "WHERE namespace = $1 AND catalog_name = $2",
    ),
)


@dataclass
class PurgeReport:
    purge_id: int
    dataset_id: str
    requested_by: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    # Calls that took this purge up: more than 1 when an earlier one was interrupted.
    attempts: int
    deleted: dict[str, int] = field(default_factory=dict)
    # What the verification found left (empty when the purge is complete).
    remaining: dict[str, int] = field(default_factory=dict)
    # The dataset did not exist: this is the record of the purge that removed it.
    already_purged: bool = False

    @property
    def complete(self) -> bool:
        return self.finished_at is not None

    @classmethod
    def of(cls, row: asyncpg.Record, *, already_purged: bool = False) -> PurgeReport:
        return cls(
            purge_id=row["purge_id"],
            dataset_id=row["dataset_id"],
            requested_by=row["requested_by"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            attempts=row["attempts"],
            deleted=dict(json.loads(row["deleted"])),
            remaining=dict(json.loads(row["remaining"])),
            already_purged=already_purged,
        )


def _added(counts: Mapping[str, int], more: Mapping[str, int]) -> dict[str, int]:
    return {k: counts.get(k, 0) + more.get(k, 0) for k in {*counts, *more}}


_AUDIT_COLUMNS = (
    "purge_id, dataset_id, requested_by, started_at, finished_at, attempts, deleted, remaining"
)


class Purger(StorageJob):
    async def purge(self, dataset_id: str, requested_by: str) -> PurgeReport:
        """Purge ``dataset_id``, or complete an interrupted purge of it; NotFound when the
        dataset does not exist and was never purged."""
        check_name("dataset_id", dataset_id)
        async with (
            self._pool.acquire() as conn,
            wait_lock(conn, PURGE_LOCK, dataset_key(dataset_id)),
        ):
            begun = await self._begin(conn, dataset_id, requested_by or "anonymous")
            if begun.already_purged:
                return begun
            await self._checkpoint("purge-marked")
            purge_id = begun.purge_id
            tables = await conn.fetch(
                "SELECT table_id FROM fusou_tables WHERE dataset_id = $1 ORDER BY table_id",
                dataset_id,
            )
            for row in tables:
                await self._purge_table(conn, purge_id, dataset_id, row["table_id"])
                await self._checkpoint("purge-table")
            await self._purge_dataset_rows(conn, purge_id, dataset_id)
            await self._checkpoint("purge-catalog")
            for _ in range(STORE_ROUNDS):
                await self._purge_store(conn, purge_id, dataset_id)
                await self._checkpoint("purge-store")
                remaining = await self._remaining(conn, purge_id, dataset_id)
                if not remaining:
                    break
            report = await self._finish(conn, purge_id, dataset_id, remaining)
            await self._checkpoint("purge-done")
        if remaining:
            log.error("purge %d of %s left %s", purge_id, dataset_id, remaining)
        else:
            log.info("purged %s: %s", dataset_id, report.deleted)
        return report

    async def _begin(
        self, conn: asyncpg.Connection, dataset_id: str, requested_by: str
    ) -> PurgeReport:
        async with conn.transaction():
            # Waits for the writes that entered the fence before the mark is set.
            await close_dataset(conn, dataset_id)
            exists = await conn.fetchval(
                "SELECT true FROM fusou_datasets WHERE dataset_id = $1", dataset_id
            )
            running = await conn.fetchval(
                "SELECT purge_id FROM fusou_purges WHERE dataset_id = $1 AND state = 'running'",
                dataset_id,
            )
            if not exists and running is None:
                done = await conn.fetchrow(
                    f"SELECT {_AUDIT_COLUMNS} FROM fusou_purges "
                    "WHERE dataset_id = $1 AND state = 'done' ORDER BY purge_id DESC LIMIT 1",
                    dataset_id,
                )
                if done is None:
                    raise NotFound(f"dataset {dataset_id!r} does not exist")
                return PurgeReport.of(done, already_purged=True)
            await conn.execute(
                "UPDATE fusou_datasets SET purging = true, compaction_needed = false "
                "WHERE dataset_id = $1",
                dataset_id,
            )
            if running is None:
                row = await conn.fetchrow(
                    "INSERT INTO fusou_purges (dataset_id, requested_by) VALUES ($1, $2) "
                    f"RETURNING {_AUDIT_COLUMNS}",
                    dataset_id,
                    requested_by,
                )
            else:
                row = await conn.fetchrow(
                    "UPDATE fusou_purges SET attempts = attempts + 1 WHERE purge_id = $1 "
                    f"RETURNING {_AUDIT_COLUMNS}",
                    running,
                )
        assert row is not None
        return PurgeReport.of(row)

    async def _purge_table(
        self, conn: asyncpg.Connection, purge_id: int, dataset_id: str, table_id: int
    ) -> None:
        # Archive and compaction runs of the table hold these from their first read to their
        # last write; the purge waits for a run in progress and then leaves it nothing.
        async with (
            wait_lock(conn, ARCHIVE_LOCK, table_id),
            wait_lock(conn, COMPACT_LOCK, table_id),
            wait_lock(conn, LAKE_LOCK, table_id),
            conn.transaction(),
        ):
            # No write that passed the fence before the mark is still uncommitted.
            await close_dataset(conn, dataset_id)
            blocks = await conn.execute(
                "DELETE FROM fusou_blocks b USING fusou_files f "
                "WHERE b.file_id = f.file_id AND f.table_id = $1",
                table_id,
            )
            counts = {"blocks": rows_affected(blocks)}
            for kind, table, audited in _TABLE_ROWS:
                status = await conn.execute(f"DELETE FROM {table} WHERE table_id = $1", table_id)
                if audited:
                    counts[kind] = rows_affected(status)
            await self._record(conn, purge_id, counts, table_id=table_id)

    async def _purge_dataset_rows(
        self, conn: asyncpg.Connection, purge_id: int, dataset_id: str
    ) -> None:
        catalog = self._settings.lake.catalog
        async with conn.transaction():
            objects = await conn.fetchrow(
                "WITH gone AS (DELETE FROM fusou_objects WHERE dataset_id = $1 "
                "RETURNING size_bytes) SELECT count(*) AS n, coalesce(sum(size_bytes), 0) AS b "
                "FROM gone",
                dataset_id,
            )
            assert objects is not None
            requests = rows_affected(
                await conn.execute(
                    "DELETE FROM fusou_ingest_requests WHERE dataset_id = $1", dataset_id
                )
            ) + rows_affected(
                await conn.execute(
                    "DELETE FROM fusou_upload_requests WHERE dataset_id = $1", dataset_id
                )
            )
            iceberg = rows_affected(
                await conn.execute(
                    "DELETE FROM iceberg_tables WHERE catalog_name = $1 AND table_namespace = $2",
                    catalog,
                    dataset_id,
                )
            )
            await conn.execute(
                "DELETE FROM iceberg_namespace_properties "
                "WHERE catalog_name = $1 AND namespace = $2",
                catalog,
                dataset_id,
            )
            # The recorded runs keep their counts; their error text may name the dataset.
            runs = rows_affected(
                await conn.execute(
                    "UPDATE fusou_runs SET datasets = array_remove(datasets, $1), "
                    "error = CASE WHEN error = '' THEN '' ELSE $2 END "
                    "WHERE $1 = ANY(datasets)",
                    dataset_id,
                    SCRUBBED_ERROR,
                )
            )
            await self._record(
                conn,
                purge_id,
                {
                    "objects": int(objects["n"]),
                    "object_bytes": int(objects["b"]),
                    "request_ids": requests,
                    "iceberg_tables": iceberg,
                    "runs": runs,
                },
            )

    def _prefixes(self, dataset_id: str) -> list[str]:
        return [*dataset_prefixes(dataset_id), kind_prefix(LAKE, dataset_id)]

    async def _purge_store(self, conn: asyncpg.Connection, purge_id: int, dataset_id: str) -> None:
        keys = 0
        size = 0
        # Writes still in progress fail at their end rather than leave a part behind.
        horizon = self._clock.now() + dt.timedelta(seconds=1)
        for prefix in self._prefixes(dataset_id):
            listed = await with_retries(partial(self._listing, prefix), f"listing {prefix}")
            if listed:
                await with_retries(
                    partial(self._store.delete_many, list(listed)), f"deleting {prefix}"
                )
            keys += len(listed)
            size += sum(listed.values())
            await with_retries(
                partial(self._store.sweep_incomplete, horizon, prefix), f"sweeping {prefix}"
            )
        async with conn.transaction():
            await self._record(conn, purge_id, {"store_objects": keys, "store_bytes": size})

    async def _listing(self, prefix: str) -> dict[str, int]:
        return {info.key: info.size async for info in self._store.list(prefix)}

    async def _remaining(
        self, conn: asyncpg.Connection, purge_id: int, dataset_id: str
    ) -> dict[str, int]:
        table_ids = await conn.fetchval(
            "SELECT table_ids FROM fusou_purges WHERE purge_id = $1", purge_id
        )
        found: dict[str, int] = {}
        for kind, table, _ in _TABLE_ROWS:
            n = await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE table_id = ANY($1::integer[])",
                table_ids,
            )
            found[kind] = found.get(kind, 0) + n
        found["blocks"] = await conn.fetchval(
            "SELECT count(*) FROM fusou_blocks b JOIN fusou_files f USING (file_id) "
            "WHERE f.table_id = ANY($1::integer[])",
            table_ids,
        )
        for kind, query in _DATASET_REMAINS:
            found[kind] = found.get(kind, 0) + await conn.fetchval(query, dataset_id)
        for kind, query in _ICEBERG_REMAINS:
            found[kind] = await conn.fetchval(query, dataset_id, self._settings.lake.catalog)
        for prefix in self._prefixes(dataset_id):
            listed = await with_retries(partial(self._listing, prefix), f"listing {prefix}")
            found["store_objects"] = found.get("store_objects", 0) + len(listed)
        return {kind: n for kind, n in found.items() if n}

    async def _finish(
        self,
        conn: asyncpg.Connection,
        purge_id: int,
        dataset_id: str,
        remaining: dict[str, int],
    ) -> PurgeReport:
        async with conn.transaction():
            if not remaining:
                await conn.execute("DELETE FROM fusou_datasets WHERE dataset_id = $1", dataset_id)
            row = await conn.fetchrow(
                "UPDATE fusou_purges SET remaining = $2, "
                "state = CASE WHEN $2 = '{}'::jsonb THEN 'done' ELSE 'running' END, "
                "finished_at = CASE WHEN $2 = '{}'::jsonb THEN now() END "
                f"WHERE purge_id = $1 RETURNING {_AUDIT_COLUMNS}",
                purge_id,
                json.dumps(remaining),
            )
        assert row is not None
        return PurgeReport.of(row)

    @staticmethod
    async def _record(
        conn: asyncpg.Connection,
        purge_id: int,
        counts: Mapping[str, int],
        *,
        table_id: int | None = None,
    ) -> None:
        """Add ``counts`` to the audit row, in the transaction that deleted them (so that a
        resumed purge counts nothing twice)."""
        current: Any = await conn.fetchval(
            "SELECT deleted FROM fusou_purges WHERE purge_id = $1 FOR UPDATE", purge_id
        )
        total = _added(json.loads(current), counts)
        await conn.execute(
            "UPDATE fusou_purges SET deleted = $2, "
            "table_ids = CASE WHEN $3::integer IS NULL OR $3 = ANY(table_ids) THEN table_ids "
            "ELSE table_ids || $3::integer END WHERE purge_id = $1",
            purge_id,
            json.dumps(total),
            table_id,
        )
