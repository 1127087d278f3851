"""The published tables as the catalog lists them, with what FUSOU knows of each."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from fusou.db.reach import reaching_database
from fusou.errors import NotFound


@dataclass(frozen=True)
class PublishedTable:
    namespace: str  # the dataset
    name: str
    metadata_location: str
    schema_version: int | None
    days: int
    rows: int
    published_at: dt.datetime | None

    @property
    def identifier(self) -> str:
        return f"{self.namespace}.{self.name}"


_TABLES = """
SELECT i.table_namespace, i.table_name, i.metadata_location, l.schema_version, l.published_at,
       coalesce(f.days, 0) AS days, coalesce(f.rows, 0) AS rows
FROM iceberg_tables i
LEFT JOIN fusou_tables t ON t.dataset_id = i.table_namespace AND t.table_name = i.table_name
LEFT JOIN fusou_lake_tables l USING (table_id)
LEFT JOIN (SELECT table_id, count(DISTINCT day) FILTER (WHERE row_count > 0) AS days,
                  sum(row_count)::bigint AS rows
           FROM fusou_lake_files WHERE state = 'published' GROUP BY table_id) f USING (table_id)
WHERE i.catalog_name = $1 AND ($2 = '' OR i.table_namespace = $2)
ORDER BY i.table_namespace, i.table_name
"""


async def published_tables(dsn: str, catalog: str, dataset: str = "") -> list[PublishedTable]:
    async with reaching_database("FUSOU_DATABASE_URL", "connect to PostgreSQL"):
        conn = await asyncpg.connect(dsn)
    try:
        try:
            rows = await conn.fetch(_TABLES, catalog, dataset)
        except asyncpg.UndefinedTableError:
            raise NotFound(
                "this database has no lake yet: start the services (or run `fusou migrate`)"
            ) from None
    finally:
        await conn.close()
    return [
        PublishedTable(
            r["table_namespace"],
            r["table_name"],
            r["metadata_location"] or "",
            r["schema_version"],
            r["days"],
            r["rows"],
            r["published_at"],
        )
        for r in rows
    ]
