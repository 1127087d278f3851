"""Where the lake lives, and the Iceberg catalog that names its tables.

The catalog is pyiceberg's SQL catalog in FUSOU's own PostgreSQL: the JDBC catalog layout
(``iceberg_tables``, created by migration 0008), which Spark, Trino and Flink read with their
stock Iceberg JDBC catalog, so no catalog server has to run beside FUSOU. The tables' metadata
and data files live in the object store under ``lake/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from pyiceberg.catalog.sql import SqlCatalog

from fusou.config import ConfigError, Settings
from fusou.storage.keys import LAKE


@dataclass(frozen=True)
class LakeLocation:
    """The object store's root as a URI engines open (``s3://bucket/prefix``,
    ``file:///path``), without a trailing slash."""

    root: str

    @classmethod
    def of(cls, store_url: str) -> LakeLocation:
        return cls(store_url.rstrip("/"))

    def uri(self, key: str) -> str:
        """The URI of the object at ``key``."""
        return f"{self.root}/{key}"

    @property
    def warehouse(self) -> str:
        return self.uri(LAKE)

    def table(self, dataset_id: str, table: str) -> str:
        return self.uri(f"{LAKE}/{dataset_id}/{table}")


def sqlalchemy_url(database_url: str) -> str:
    """FUSOU's ``postgresql://`` DSN in the form SQLAlchemy opens with psycopg2."""
    scheme, rest = database_url.split("://", 1)
    if scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"FUSOU_DATABASE_URL: not a postgresql:// URL ({scheme}://...)")
    return f"postgresql+psycopg2://{rest}"


@dataclass(frozen=True)
class JdbcSettings:
    """The database as a Java engine's JDBC catalog reaches it."""

    url: str
    user: str
    password: str
    # Why the engines cannot use it as is, when they cannot (a Unix socket).
    problem: str = ""


def jdbc_settings(database_url: str) -> JdbcSettings:
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    host = parts.hostname or ""
    socket = (query.get("host") or [""])[0]
    database = parts.path.lstrip("/") or "postgres"
    problem = ""
    if not host or socket.startswith("/"):
        host = host or "localhost"
        problem = (
            "the database listens on a Unix socket only; set FUSOU_DATABASE_URL to a TCP "
            "address for JVM engines"
        )
    port = parts.port or 5432
    return JdbcSettings(
        f"jdbc:postgresql://{host}:{port}/{database}",
        parts.username or "postgres",
        parts.password or "",
        problem,
    )


def catalog_properties(settings: Settings) -> dict[str, str]:
    """What ``SqlCatalog(name, **properties)`` needs to open FUSOU's lake."""
    if not settings.database.url or not settings.store.url:
        raise ConfigError(
            "the lake needs FUSOU_DATABASE_URL and FUSOU_OBJECT_STORE_URL (`fusou up` sets both)"
        )
    props = {
        "uri": sqlalchemy_url(settings.database.url),
        "warehouse": LakeLocation.of(settings.store.url).warehouse,
        # Migration 0008 made the tables; pyiceberg must not race other processes to do it.
        "init_catalog_tables": "false",
    }
    if settings.store.url.startswith("s3://"):
        if settings.store.s3_endpoint_url:
            props["s3.endpoint"] = settings.store.s3_endpoint_url
        # Without a region pyiceberg asks the bucket for one, which S3-compatible servers
        # may not answer; the SDK's own variables are what FUSOU's store uses then.
        region = (
            settings.store.s3_region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
        )
        if region:
            props["s3.region"] = region
    return props


def open_catalog(settings: Settings) -> SqlCatalog:
    """The lake's catalog. Blocking (SQLAlchemy, psycopg2): call it from a thread."""
    return SqlCatalog(settings.lake.catalog, **catalog_properties(settings))
