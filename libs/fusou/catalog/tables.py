"""Tables and their schema versions, with an in-process cache.

Schema versions are immutable, so a cached version is always right. The cached *latest* version
may lag behind another process; that is harmless because widening is monotone: a batch that fits
an older version fits every newer one, and anything that does not fit goes through ``evolve``,
which merges against the database's latest under a row lock.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Final

import asyncpg

from fusou.catalog.fence import open_dataset
from fusou.errors import InvalidArgument
from fusou.schema.evolve import merge_batch_schema
from fusou.schema.model import FieldType, TableSchema, field_name_problem

DEFAULT_TIME_FIELD = "timestamp"


class Unchanged(enum.Enum):
    """A setting a redeclaration leaves as it is."""

    UNCHANGED = "unchanged"


UNCHANGED: Final = Unchanged.UNCHANGED


@dataclass(frozen=True)
class TableInfo:
    table_id: int
    dataset_id: str
    name: str
    time_field: str
    key_fields: tuple[str, ...]
    latest: TableSchema
    # How long the table keeps rows (ms, by their time); None: for ever.
    retention_ms: int | None = None

    @cached_property
    def latest_json(self) -> str:
        """The latest version's Avro schema as JSON ("" before the first version)."""
        return "" if self.latest.version == 0 else json.dumps(self.latest.to_avro())


@dataclass(frozen=True)
class DeclareResult:
    info: TableInfo
    created: bool


class TableRegistry:
    def __init__(self, pool: asyncpg.Pool, *, max_fields: int = 1000) -> None:
        self._pool = pool
        # Most fields a table's schema may have (FUSOU_MAX_FIELDS): enforced here, under the
        # table's row lock, where concurrent batches that each add fields meet.
        self.max_fields = max_fields
        self._tables: dict[tuple[str, str], TableInfo] = {}
        self._versions: dict[tuple[int, int], TableSchema] = {}

    async def get(self, dataset_id: str, table: str, *, refresh: bool = False) -> TableInfo | None:
        key = (dataset_id, table)
        if not refresh and key in self._tables:
            return self._tables[key]
        async with self._pool.acquire() as conn:
            info = await self._load(conn, dataset_id, table)
        if info is not None:
            self.remember(info)
        elif refresh:
            # Gone (its dataset was purged): a table created again gets a new id.
            self._tables.pop(key, None)
        return info

    async def version(self, table_id: int, version: int) -> TableSchema:
        key = (table_id, version)
        cached = self._versions.get(key)
        if cached is not None:
            return cached
        async with self._pool.acquire() as conn:
            raw = await conn.fetchval(
                "SELECT avro_schema FROM fusou_table_schemas WHERE table_id = $1 AND version = $2",
                table_id,
                version,
            )
        if raw is None:
            raise LookupError(f"table {table_id} has no schema version {version}")
        schema = TableSchema.from_avro(json.loads(raw), version)
        self._versions[key] = schema
        return schema

    async def evolve(
        self, dataset_id: str, table: str, batch_types: dict[str, FieldType]
    ) -> TableInfo:
        """Create the table if needed and widen its schema to hold ``batch_types``.

        Raises InvalidArgument on a type conflict, leaving everything unchanged.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            info = await self.evolve_in(conn, dataset_id, table, batch_types)
        self.remember(info)
        return info

    async def evolve_in(
        self,
        conn: asyncpg.Connection,
        dataset_id: str,
        table: str,
        batch_types: dict[str, FieldType],
        *,
        field_prefix: str = "",
    ) -> TableInfo:
        """``evolve`` inside the caller's transaction; the caller calls ``remember`` once it
        committed (a rolled-back version must not be cached)."""
        await open_dataset(conn, dataset_id)
        await conn.execute(
            "INSERT INTO fusou_tables (dataset_id, table_name) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            dataset_id,
            table,
        )
        info = await self._load(conn, dataset_id, table, lock=True)
        assert info is not None
        merged = merge_batch_schema(
            info.latest, batch_types, field_prefix=field_prefix, max_fields=self.max_fields
        )
        if merged.changed:
            info = await self._store_version(conn, info, merged.schema)
        return info

    async def declare(
        self,
        dataset_id: str,
        table: str,
        time_field: str,
        key_fields: Sequence[str],
        schema: TableSchema | None,
        retention_ms: int | Unchanged | None = UNCHANGED,
    ) -> DeclareResult:
        """Fix a table's definition before data arrives; redeclaring the same is a no-op, but
        for ``retention_ms``, which a redeclaration changes (None: keep rows for ever;
        UNCHANGED: as it is, or for ever for a new table)."""
        if len(key_fields) > self.max_fields:
            raise InvalidArgument(
                "key_fields",
                f"names {len(key_fields)} fields, over the limit of {self.max_fields} "
                "(FUSOU_MAX_FIELDS)",
            )
        if schema is not None and len(schema.fields) > self.max_fields:
            raise InvalidArgument(
                "avro_schema",
                f"declares {len(schema.fields)} fields, over the limit of {self.max_fields} "
                "(FUSOU_MAX_FIELDS)",
            )
        for i, name in enumerate([time_field, *key_fields]):
            problem = field_name_problem(name)
            if problem is not None:
                raise InvalidArgument("time_field" if i == 0 else f"key_fields[{i - 1}]", problem)
        if schema is not None and schema.time_field != time_field:
            raise InvalidArgument("avro_schema", f"the schema's time field is not {time_field!r}")
        keys = tuple(key_fields)
        async with self._pool.acquire() as conn, conn.transaction():
            await open_dataset(conn, dataset_id)
            inserted = await conn.fetchval(
                "INSERT INTO fusou_tables (dataset_id, table_name, time_field, key_fields) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING table_id",
                dataset_id,
                table,
                time_field,
                list(keys),
            )
            info = await self._load(conn, dataset_id, table, lock=True)
            assert info is not None
            if inserted is None:
                same = info.time_field == time_field and info.key_fields == keys
                if schema is not None:
                    same = same and merge_batch_schema(info.latest, _types(schema)).changed is False
                if not same:
                    raise InvalidArgument(
                        "table",
                        f"table {dataset_id}/{table} already exists with another definition "
                        f"(time field {info.time_field!r}, key fields {list(info.key_fields)})",
                    )
            elif schema is not None:
                info = await self._store_version(conn, info, schema.with_version(1))
            if not isinstance(retention_ms, Unchanged) and retention_ms != info.retention_ms:
                await conn.execute(
                    "UPDATE fusou_tables SET retention_ms = $2 WHERE table_id = $1",
                    info.table_id,
                    retention_ms,
                )
                info = dataclasses.replace(info, retention_ms=retention_ms)
        self.remember(info)
        return DeclareResult(info, inserted is not None)

    # -- internals ------------------------------------------------------------------------------

    async def _load(
        self, conn: asyncpg.Connection, dataset_id: str, table: str, *, lock: bool = False
    ) -> TableInfo | None:
        row = await conn.fetchrow(
            "SELECT table_id, time_field, key_fields, latest_version, retention_ms "
            "FROM fusou_tables "
            # NO KEY UPDATE serializes schema changes without waiting for transactions that
            # only reference the table (registering files takes a KEY SHARE lock on it).
            "WHERE dataset_id = $1 AND table_name = $2" + (" FOR NO KEY UPDATE" if lock else ""),
            dataset_id,
            table,
        )
        if row is None:
            return None
        table_id, version = row["table_id"], row["latest_version"]
        if version == 0:
            latest = TableSchema.initial(row["time_field"])
        else:
            cached = self._versions.get((table_id, version))
            if cached is None:
                raw = await conn.fetchval(
                    "SELECT avro_schema FROM fusou_table_schemas "
                    "WHERE table_id = $1 AND version = $2",
                    table_id,
                    version,
                )
                cached = TableSchema.from_avro(json.loads(raw), version)
            latest = cached
        return TableInfo(
            table_id,
            dataset_id,
            table,
            row["time_field"],
            tuple(row["key_fields"]),
            latest,
            row["retention_ms"],
        )

    async def _store_version(
        self, conn: asyncpg.Connection, info: TableInfo, schema: TableSchema
    ) -> TableInfo:
        await conn.execute(
            "INSERT INTO fusou_table_schemas (table_id, version, avro_schema) VALUES ($1, $2, $3)",
            info.table_id,
            schema.version,
            json.dumps(schema.to_avro()),
        )
        await conn.execute(
            "UPDATE fusou_tables SET latest_version = $2 WHERE table_id = $1",
            info.table_id,
            schema.version,
        )
        return dataclasses.replace(info, latest=schema)

    def remember(self, info: TableInfo) -> None:
        """Cache what a committed transaction (or a read) showed."""
        if info.latest.version > 0:
            self._versions[(info.table_id, info.latest.version)] = info.latest
        key = (info.dataset_id, info.name)
        current = self._tables.get(key)
        # A table purged and created again has a higher id; the newer table wins.
        if (
            current is None
            or current.table_id < info.table_id
            or (current.table_id == info.table_id and current.latest.version <= info.latest.version)
        ):
            self._tables[key] = info


def _types(schema: TableSchema) -> dict[str, FieldType]:
    return {f.name: f.type for f in schema.fields}
