"""What each engine needs to open FUSOU's lake: pyiceberg's catalog properties, Spark's and
Trino's JDBC catalog settings, DuckDB's secret. Printed by ``fusou lake``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fusou.config import Settings
from fusou.lake.catalog import catalog_properties, jdbc_settings

# What prints in place of a secret unless it is asked for.
HIDDEN = "****"


@dataclass(frozen=True)
class EngineSettings:
    catalog: str
    warehouse: str
    pyiceberg: dict[str, str]
    spark: dict[str, str]
    trino: dict[str, str]
    duckdb_secret: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", f":{HIDDEN}@", 1)
    return parts._replace(netloc=netloc).geturl()


def engine_settings(settings: Settings, *, secrets: bool = False) -> EngineSettings:
    props = catalog_properties(settings)
    props.pop("init_catalog_tables")
    assert settings.database.url is not None and settings.store.url is not None
    jdbc = jdbc_settings(settings.database.url)
    password = jdbc.password if secrets or not jdbc.password else HIDDEN
    if not secrets:
        props["uri"] = _hide_password(props["uri"])
    name = settings.lake.catalog
    warehouse = props["warehouse"]
    spark = {
        f"spark.sql.catalog.{name}": "org.apache.iceberg.spark.SparkCatalog",
        f"spark.sql.catalog.{name}.type": "jdbc",
        f"spark.sql.catalog.{name}.uri": jdbc.url,
        f"spark.sql.catalog.{name}.jdbc.user": jdbc.user,
        f"spark.sql.catalog.{name}.warehouse": warehouse,
    }
    trino = {
        "connector.name": "iceberg",
        "iceberg.catalog.type": "jdbc",
        "iceberg.jdbc-catalog.catalog-name": name,
        "iceberg.jdbc-catalog.driver-class": "org.postgresql.Driver",
        "iceberg.jdbc-catalog.connection-url": jdbc.url,
        "iceberg.jdbc-catalog.connection-user": jdbc.user,
        "iceberg.jdbc-catalog.default-warehouse-dir": warehouse,
    }
    if jdbc.password:
        spark[f"spark.sql.catalog.{name}.jdbc.password"] = password
        trino["iceberg.jdbc-catalog.connection-password"] = password
    duckdb: dict[str, str] = {}
    notes: list[str] = []
    if jdbc.problem:
        notes.append(f"Spark, Trino: {jdbc.problem}")
    if warehouse.startswith("s3://"):
        endpoint = settings.store.s3_endpoint_url
        region = props.get("s3.region", "")
        spark[f"spark.sql.catalog.{name}.io-impl"] = "org.apache.iceberg.aws.s3.S3FileIO"
        trino["fs.native-s3.enabled"] = "true"
        duckdb = {"TYPE": "s3", "KEY_ID": "$AWS_ACCESS_KEY_ID", "SECRET": "$AWS_SECRET_ACCESS_KEY"}
        if region:
            spark[f"spark.sql.catalog.{name}.client.region"] = region
            trino["s3.region"] = region
            duckdb["REGION"] = region
        if endpoint:
            host = urlsplit(endpoint)
            spark[f"spark.sql.catalog.{name}.s3.endpoint"] = endpoint
            spark[f"spark.sql.catalog.{name}.s3.path-style-access"] = "true"
            trino["s3.endpoint"] = endpoint
            trino["s3.path-style-access"] = "true"
            duckdb["ENDPOINT"] = host.netloc
            duckdb["URL_STYLE"] = "path"
            duckdb["USE_SSL"] = "true" if host.scheme == "https" else "false"
        if "AWS_ACCESS_KEY_ID" not in os.environ:
            notes.append(
                "S3 credentials: the engines read AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
    else:
        trino["fs.hadoop.enabled"] = "true"
    return EngineSettings(name, warehouse, props, spark, trino, duckdb, tuple(notes))
