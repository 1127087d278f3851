"""What the database and the object store hold of one dataset, found without FUSOU's code.

Every row of every table of the database is looked at: a row is the dataset's when its text
names the dataset, or when it has a ``table_id`` among the dataset's tables' ids (the buffer's
records are binary and name neither). Every object of the store is listed. The audit trail of
purges is left out: it names the dataset on purpose and holds no data.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from fusou.objectstore.base import ObjectStore

_NOT_SCANNED = ("fusou_purges", "fusou_schema_migrations")


@dataclass(frozen=True)
class Footprint:
    # "table: n rows" for every table holding rows of the dataset.
    rows: dict[str, int]
    # Key -> SHA-256 of the content, for every object of the dataset.
    objects: dict[str, str]

    @property
    def empty(self) -> bool:
        return not self.rows and not self.objects


async def table_ids(url: str, dataset: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT table_id FROM fusou_tables WHERE dataset_id = $1", dataset)
    finally:
        await conn.close()
    return sorted(r["table_id"] for r in rows)


async def footprint(
    url: str, store: ObjectStore, dataset: str, ids: Sequence[int], root: Path | None = None
) -> Footprint:
    """The dataset's rows and objects; with ``root`` (a local store's directory), every file
    under it whose path names the dataset counts too, temporary ones included."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT c.relname, bool_or(a.attname = 'table_id') AS has_table_id, "
            "bool_or(a.attname = 'file_id') AS has_file_id "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
            "GROUP BY c.relname ORDER BY c.relname"
        )
        rows: dict[str, int] = {}
        for t in tables:
            name = t["relname"]
            if name in _NOT_SCANNED:
                continue
            condition = "x::text LIKE '%' || $1 || '%'"
            if t["has_table_id"]:
                condition += " OR x.table_id = ANY($2::integer[])"
            elif t["has_file_id"]:
                condition += (
                    " OR x.file_id IN (SELECT file_id FROM fusou_files "
                    "WHERE table_id = ANY($2::integer[]))"
                )
            else:
                condition += " OR $2::integer[] IS NULL"
            n = await conn.fetchval(
                f'SELECT count(*) FROM "{name}" x WHERE {condition}', dataset, list(ids)
            )
            if n:
                rows[name] = n
    finally:
        await conn.close()
    objects = {
        info.key: hashlib.sha256(await store.get(info.key)).hexdigest()
        async for info in store.list("")
        if f"/{dataset}/" in info.key
    }
    if root is not None:
        files = await asyncio.to_thread(_files, root, dataset)
        objects.update({k: v for k, v in files.items() if k not in objects})
    return Footprint(rows, objects)


def _files(root: Path, dataset: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in root.rglob("*"):
        relative = str(path.relative_to(root))
        if path.is_file() and f"/{dataset}/" in f"/{relative}":
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found
