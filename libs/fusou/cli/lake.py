"""``fusou lake``: what an engine needs to read FUSOU's Iceberg tables, and which there are."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusou.config import ConfigError, Settings

if TYPE_CHECKING:
    from fusou.lake.engines import EngineSettings
    from fusou.lake.tables import PublishedTable

# Where `fusou up` records the database and store it runs on, for commands run beside it.
UP_STATE = "up.json"


def add_parser(sub: Any) -> None:
    lake = sub.add_parser(
        "lake",
        help="print the Iceberg catalog settings for pyiceberg, Spark, Trino and DuckDB, and the "
        "published tables",
    )
    lake.add_argument("--dataset", default="", help="only this dataset's tables")
    lake.add_argument("--json", action="store_true", help="one JSON object instead of text")
    lake.add_argument(
        "--show-secrets", action="store_true", help="print the database password as it is"
    )


def with_up_state(settings: Settings, data_dir: Path) -> Settings:
    """``settings``, the database and store of a running ``fusou up`` filling what is unset."""
    if settings.database.url and settings.store.url:
        return settings
    state = data_dir / UP_STATE
    try:
        recorded = json.loads(state.read_text())
    except FileNotFoundError:
        raise ConfigError(
            "FUSOU_DATABASE_URL and FUSOU_OBJECT_STORE_URL are not both set, and no `fusou up` "
            f"is running here ({state} does not exist)"
        ) from None
    return settings.replace(
        database_url=settings.database.url or recorded["database_url"],
        object_store_url=settings.store.url or recorded["object_store_url"],
    )


def run(args: argparse.Namespace, settings: Settings, data_dir: Path) -> int:
    # Here, not at the top: pyiceberg takes a while to import, and every command imports this.
    from fusou.errors import NotFound
    from fusou.lake.engines import engine_settings
    from fusou.lake.tables import published_tables

    settings = with_up_state(settings, data_dir)
    assert settings.database.url is not None
    engines = engine_settings(settings, secrets=args.show_secrets)
    try:
        tables = asyncio.run(
            published_tables(settings.database.url, settings.lake.catalog, args.dataset)
        )
    except NotFound as exc:
        print(f"fusou: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    **asdict(engines),
                    "tables": [
                        {
                            "identifier": t.identifier,
                            "metadata_location": t.metadata_location,
                            "schema_version": t.schema_version,
                            "days": t.days,
                            "rows": t.rows,
                            "published_at": t.published_at.isoformat() if t.published_at else None,
                        }
                        for t in tables
                    ],
                },
                indent=2,
            )
        )
    else:
        print(render(engines, tables))
    return 0


def _props(values: dict[str, str], sep: str) -> list[str]:
    return [f"  {k}{sep}{v}" for k, v in values.items()]


def render(engines: EngineSettings, tables: list[PublishedTable]) -> str:
    example = tables[0].identifier if tables else "DATASET.TABLE"
    latest = tables[0].metadata_location if tables else "METADATA_LOCATION"
    lines = [
        f"FUSOU's open lake: Apache Iceberg tables in the JDBC catalog {engines.catalog!r}",
        f"warehouse: {engines.warehouse}",
        "",
        "tables (dataset.table, published days and rows, current metadata file):",
        *(
            f"  {t.identifier}  {t.days} days, {t.rows} rows, schema v{t.schema_version}  "
            f"{t.metadata_location}"
            for t in tables
        ),
        *([] if tables else ["  (none yet: Archive publishes the archived rows)"]),
        "",
        "pyiceberg (pip install 'pyiceberg[sql-postgres,pyarrow]'):",
        "  from pyiceberg.catalog.sql import SqlCatalog",
        f"  catalog = SqlCatalog({engines.catalog!r}, **{json.dumps(engines.pyiceberg)})",
        f"  arrow = catalog.load_table({example!r}).scan().to_arrow()",
        "",
        "DuckDB (over the scan's Arrow, or the iceberg extension on a table's metadata file):",
        "  import duckdb; duckdb.sql('SELECT count(*) FROM arrow')",
        "  INSTALL iceberg; LOAD iceberg;",
    ]
    if engines.duckdb_secret:
        secret = ", ".join(
            f"{k} {v}" if k == "TYPE" or v.startswith("$") else f"{k} '{v}'"
            for k, v in engines.duckdb_secret.items()
        )
        lines.append(f"  CREATE SECRET fusou ({secret});")
    lines += [
        f"  SELECT * FROM iceberg_scan('{latest}');",
        "",
        "Spark (spark-defaults.conf; iceberg-spark-runtime and the PostgreSQL JDBC driver):",
        *_props(engines.spark, " "),
        "",
        f"Trino (etc/catalog/{engines.catalog}.properties):",
        *_props(engines.trino, "="),
    ]
    if engines.notes:
        lines += ["", "notes:", *(f"  {n}" for n in engines.notes)]
    return "\n".join(lines)
