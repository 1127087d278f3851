"""The settings, in sections: each variable is declared once, as a field of its section, with
its default, bound (its parser) and help text.

Sections follow who reads them: a service reads ``server``, ``database``, ``store`` and its own
section; client commands read ``client`` only; ``log`` is read by every command.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fusou.config.errors import ConfigError
from fusou.config.parsers import (
    boolean,
    choice,
    database_url,
    integer,
    number,
    object_store_url,
    optional_port,
    optional_text,
    set_means_on,
)
from fusou.config.setting import Variable, setting, variables
from fusou.schema.time_bounds import MAX_SPAN_S, MAX_TIME_MS, MIN_TIME_MS

MiB = 1024 * 1024


@dataclass(frozen=True)
class DatabaseSettings:
    """The PostgreSQL that holds the buffer and the catalog."""

    url: str | None = setting(
        "FUSOU_DATABASE_URL",
        None,
        database_url,
        "PostgreSQL DSN of the buffer and catalog. Unset: `fusou up` starts a private server.",
    )
    pool_size: int = setting(
        "FUSOU_DB_POOL_SIZE",
        10,
        integer(1, 1000),
        "Connections per service process.",
    )
    acquire_timeout_s: float = setting(
        "FUSOU_DB_ACQUIRE_TIMEOUT_S",
        30.0,
        number(0.1),
        "How long a call waits for a free PostgreSQL connection before it answers UNAVAILABLE "
        "(the pool is exhausted).",
    )


@dataclass(frozen=True)
class StoreSettings:
    """The object store that holds cold, raw and optimized files."""

    url: str | None = setting(
        "FUSOU_OBJECT_STORE_URL",
        None,
        object_store_url,
        "`s3://bucket/prefix` or `file:///path`. Unset: `fusou up` uses a local directory.",
    )
    s3_endpoint_url: str | None = setting(
        "FUSOU_S3_ENDPOINT_URL",
        None,
        optional_text,
        "S3 endpoint for MinIO, R2 or a test server. Unset: AWS.",
    )
    s3_region: str | None = setting(
        "FUSOU_S3_REGION",
        None,
        optional_text,
        "S3 region. Unset: the `AWS_*` variables or the SDK default.",
    )
    delete_grace_s: float = setting(
        "FUSOU_DELETE_GRACE_S",
        3600.0,
        number(0.0),
        "Replaced or orphaned objects are deleted only after this many seconds.",
    )


# Arrow Flight's customary port.
DEFAULT_FLIGHT_PORT = 8815


@dataclass(frozen=True)
class ServerSettings:
    """How a service process listens, reports and stops."""

    grpc_host: str = setting(
        "FUSOU_GRPC_HOST",
        "[::]",
        str,
        "Address the gRPC server binds.",
    )
    grpc_port: int = setting(
        "FUSOU_GRPC_PORT",
        50051,
        integer(0, 65535),
        "Port of the gRPC server (0 picks a free port).",
    )
    flight_port: int = setting(
        "FUSOU_FLIGHT_PORT",
        DEFAULT_FLIGHT_PORT,
        integer(0, 65535),
        "Port of the reader's Arrow Flight server, for bulk reads as Arrow (0 picks a free "
        "port). Only a process serving the reader opens it; TLS and tokens as on the gRPC port.",
    )
    grpc_max_message_bytes: int = setting(
        "FUSOU_GRPC_MAX_MESSAGE_BYTES",
        64 * MiB,
        integer(1024, 2**31 - 1),
        "Largest gRPC message accepted or sent.",
    )
    shutdown_grace_s: float = setting(
        "FUSOU_SHUTDOWN_GRACE_S",
        15.0,
        number(0.0),
        "On SIGTERM, how long in-flight calls may take to finish.",
    )
    shutdown_drain_s: float = setting(
        "FUSOU_SHUTDOWN_DRAIN_S",
        0.0,
        number(0.0),
        "On SIGTERM, how long health reports `NOT_SERVING` while new calls are still accepted, "
        "so load balancers stop routing here before the listener closes (the Kubernetes base "
        "sets 5).",
    )
    tls_cert_file: str | None = setting(
        "FUSOU_TLS_CERT_FILE",
        None,
        optional_text,
        "PEM certificate chain of the gRPC server. Set with `FUSOU_TLS_KEY_FILE`: the port "
        "speaks TLS only. Unset: plaintext.",
    )
    tls_key_file: str | None = setting(
        "FUSOU_TLS_KEY_FILE",
        None,
        optional_text,
        "PEM private key of `FUSOU_TLS_CERT_FILE`.",
    )
    health_port: int | None = setting(
        "FUSOU_HEALTH_PORT",
        None,
        optional_port,
        "A second, plaintext port serving only `grpc.health.v1`, for Kubernetes probes (which "
        "do not speak TLS).",
    )
    metrics_port: int = setting(
        "FUSOU_METRICS_PORT",
        9464,
        integer(0, 65535),
        "Port of the HTTP endpoint on FUSOU_GRPC_HOST: Prometheus's /metrics, and the "
        "dashboard (/dashboard) where the reader is hosted (0 picks a free port).",
    )
    metrics_interval_s: float = setting(
        "FUSOU_METRICS_INTERVAL_S",
        15.0,
        number(0.1),
        "How often the buffer's depth and oldest row age are read for the metrics (and the "
        "per-table series, the last runs, and the dashboard's rates).",
    )
    metrics_table_series: int = setting(
        "FUSOU_METRICS_TABLE_SERIES",
        50,
        integer(0),
        "Most tables with their own fusou_table_* series; the rest are summed under "
        'dataset="(other)", table="(other)", which bounds the cardinality (0: that series '
        "alone).",
    )
    readiness_interval_s: float = setting(
        "FUSOU_READINESS_INTERVAL_S",
        5.0,
        number(0.1),
        "How often the `readiness` health status checks PostgreSQL and the object store.",
    )
    readiness_timeout_s: float = setting(
        "FUSOU_READINESS_TIMEOUT_S",
        3.0,
        number(0.1),
        "How long a readiness check may take before the dependency counts as unreachable.",
    )
    cpu_workers: int = setting(
        "FUSOU_CPU_WORKERS",
        1,
        integer(0, 64),
        "Worker processes for CPU-heavy work (parsing, encoding, compression); `0` runs it on a "
        "thread.",
    )
    data_dir: str | None = setting(
        "FUSOU_DATA_DIR",
        None,
        optional_text,
        "Where `fusou up` keeps its embedded PostgreSQL and local object store. Unset: "
        "`~/.local/share/fusou`.",
    )


@dataclass(frozen=True)
class AuthSettings:
    """Who may call which RPC."""

    tokens: str | None = setting(
        "FUSOU_AUTH_TOKENS",
        None,
        set_means_on,
        "Bearer tokens as a JSON list of `{name, sha256, role, datasets}` (see "
        "[Authentication](#authentication-and-tls)). Unset, with `FUSOU_AUTH_TOKENS_FILE` "
        "unset: every client may call every RPC.",
    )
    tokens_file: str | None = setting(
        "FUSOU_AUTH_TOKENS_FILE",
        None,
        set_means_on,
        "A file holding the same JSON list (added to `FUSOU_AUTH_TOKENS`).",
    )


@dataclass(frozen=True)
class RowSettings:
    """What one row may hold (Ingest, UploadRaw, DeclareTable)."""

    max_fields: int = setting(
        "FUSOU_MAX_FIELDS",
        1000,
        integer(1, 10_000),
        "Most fields one row may have (Ingest, UploadRaw columns, DeclareTable), and most "
        "fields a table's schema may grow to.",
    )
    # protobuf parses a Struct nested at most 32 objects deep: a deeper value could be
    # stored but not read back as JSON rows.
    max_nesting_depth: int = setting(
        "FUSOU_MAX_NESTING_DEPTH",
        16,
        integer(1, 32),
        "Most levels of objects and lists nested in one field's value (1 to 32).",
    )
    max_row_bytes: int = setting(
        "FUSOU_MAX_ROW_BYTES",
        1 * MiB,
        integer(1024, 64 * MiB),
        "Largest row: the sum of its values' sizes (strings, bytes and nested JSON by length, "
        "numbers 8 bytes).",
    )
    min_time_ms: int = setting(
        "FUSOU_MIN_TIME_MS",
        MIN_TIME_MS,
        integer(MIN_TIME_MS, MAX_TIME_MS),
        "Earliest record time accepted, in epoch ms (0001-01-01T00:00:00Z, the earliest the "
        "storage formats hold; may be narrowed, not widened).",
    )
    max_time_ms: int = setting(
        "FUSOU_MAX_TIME_MS",
        MAX_TIME_MS,
        integer(MIN_TIME_MS, MAX_TIME_MS),
        "Latest record time accepted, in epoch ms (9999-12-31T23:59:59.999Z, the latest the "
        "storage formats hold; may be narrowed, not widened).",
    )


@dataclass(frozen=True)
class IngestSettings:
    """What one Ingest request may carry, and how rows are committed."""

    max_rows: int = setting(
        "FUSOU_INGEST_MAX_ROWS",
        100_000,
        integer(1),
        "Most rows one Ingest request may carry.",
    )
    max_bytes: int = setting(
        "FUSOU_INGEST_MAX_BYTES",
        32 * MiB,
        integer(1),
        "Largest Arrow IPC payload one Ingest request may carry, as sent and as decoded.",
    )
    group_commit_max_rows: int = setting(
        "FUSOU_GROUP_COMMIT_MAX_ROWS",
        200_000,
        integer(1),
        "Most rows committed together in one group-commit transaction.",
    )
    group_commit_concurrency: int = setting(
        "FUSOU_GROUP_COMMIT_CONCURRENCY",
        4,
        integer(1, 64),
        "Group-commit transactions in flight at once per process.",
    )


@dataclass(frozen=True)
class UploadSettings:
    """UploadRaw bundles."""

    max_fragment_bytes: int = setting(
        "FUSOU_UPLOAD_MAX_FRAGMENT_BYTES",
        128 * MiB,
        integer(1024),
        "Largest fragment of an UploadRaw bundle (each is checked in memory, one at a time).",
    )


@dataclass(frozen=True)
class ArchiveSettings:
    """Moving hot rows to cold Avro files."""

    min_age_s: float = setting(
        "FUSOU_ARCHIVE_MIN_AGE_S",
        3600.0,
        number(0.0, float(MAX_SPAN_S)),
        "Hot rows younger than this stay in the buffer.",
    )
    codec: str = setting(
        "FUSOU_ARCHIVE_CODEC",
        "deflate",
        choice("deflate", "null", "snappy", "zstandard"),
        "Avro codec of cold files (`deflate`, `null`, `snappy`, `zstandard`).",
    )
    block_rows: int = setting(
        "FUSOU_ARCHIVE_BLOCK_ROWS",
        4096,
        integer(1, 1_000_000),
        "Most rows per Avro block of a cold file (one block is what a reader fetches at once).",
    )
    block_bytes: int = setting(
        "FUSOU_ARCHIVE_BLOCK_BYTES",
        1 * MiB,
        integer(1024),
        "Most uncompressed bytes per Avro block.",
    )
    max_file_bytes: int = setting(
        "FUSOU_ARCHIVE_MAX_FILE_BYTES",
        128 * MiB,
        integer(64 * 1024),
        "A cold file is closed once it holds this many bytes (it may exceed it by one block).",
    )


@dataclass(frozen=True)
class ReaderSettings:
    """Reading cold files (also used by compaction to fetch its inputs)."""

    cache_bytes: int = setting(
        "FUSOU_READER_CACHE_BYTES",
        256 * MiB,
        integer(0),
        "Memory for decoded cold blocks per reader process (0 disables the cache).",
    )
    max_concurrent_gets: int = setting(
        "FUSOU_READER_MAX_CONCURRENT_GETS",
        16,
        integer(1, 1024),
        "Ranged GETs one read issues at once.",
    )
    coalesce_gap_bytes: int = setting(
        "FUSOU_READER_COALESCE_GAP_BYTES",
        256 * 1024,
        integer(0),
        "Blocks of one object closer than this are fetched with one GET.",
    )
    max_request_bytes: int = setting(
        "FUSOU_READER_MAX_REQUEST_BYTES",
        16 * MiB,
        integer(1024),
        "Largest merged GET (a single larger block is still one GET).",
    )


@dataclass(frozen=True)
class CompactSettings:
    """Rewriting raw, cold and small files into optimized Parquet."""

    max_datasets_per_run: int = setting(
        "FUSOU_COMPACT_MAX_DATASETS_PER_RUN",
        50,
        integer(1),
        "Scheduled compaction: datasets per run.",
    )
    concurrency: int = setting(
        "FUSOU_COMPACT_CONCURRENCY",
        2,
        integer(1, 64),
        "Scheduled compaction: datasets compacted at once.",
    )
    max_fragments: int = setting(
        "FUSOU_COMPACT_MAX_FRAGMENTS",
        1000,
        integer(1),
        "Most input files per table per run.",
    )
    max_bytes: int = setting(
        "FUSOU_COMPACT_MAX_BYTES",
        256 * MiB,
        integer(1),
        "Most input bytes per table per run, counted decoded (what the rows take in memory), "
        "which bounds a run's memory.",
    )
    timeout_ms: int = setting(
        "FUSOU_COMPACT_TIMEOUT_MS",
        600_000,
        integer(1),
        "Time bound of one compaction run.",
    )
    claim_ttl_s: float = setting(
        "FUSOU_COMPACT_CLAIM_TTL_S",
        60.0,
        number(1.0),
        "A compaction run's claim on a dataset lasts this long unless renewed; the run renews "
        "it every third of that, so a dead runner's dataset is free again within this time.",
    )
    target_file_bytes: int = setting(
        "FUSOU_COMPACT_TARGET_FILE_BYTES",
        128 * MiB,
        integer(64 * 1024),
        "Size of compacted Parquet files; smaller optimized files are compacted again.",
    )
    row_group_rows: int = setting(
        "FUSOU_COMPACT_ROW_GROUP_ROWS",
        16384,
        integer(1, 10_000_000),
        "Rows per row group of a compacted file (one row group is what a reader fetches at once).",
    )


@dataclass(frozen=True)
class LakeSettings:
    """Publishing cold and compacted data as Apache Iceberg tables (``fusou.lake``)."""

    publish: bool = setting(
        "FUSOU_LAKE_PUBLISH",
        True,
        boolean,
        "Publish each table as an Iceberg table after every archive, upload and compaction run "
        "(`false`: the lake stays as it is until publication is turned on again).",
    )
    file_rows: int = setting(
        "FUSOU_LAKE_FILE_ROWS",
        250_000,
        integer(1_000),
        "Most rows per Iceberg data file, about: a day with more is written as several files, "
        "a slice at a time, which bounds a publication's memory (tables whose key fields leave "
        "out the time field are read whole, whatever this says).",
    )
    catalog: str = setting(
        "FUSOU_LAKE_CATALOG",
        "fusou",
        str,
        "Name of the Iceberg catalog (in the database's `iceberg_tables`) the tables are "
        "published in.",
    )


@dataclass(frozen=True)
class LogSettings:
    """Logs on standard error, of servers and client commands alike."""

    level: str = setting(
        "FUSOU_LOG_LEVEL",
        "INFO",
        choice("debug", "info", "warning", "error"),
        "Log level (`debug` also logs every finished call).",
    )
    format: str = setting(
        "FUSOU_LOG_FORMAT",
        "auto",
        choice("auto", "json", "text"),
        "`json` (one object per line, with the call's `request_id`, `method` and token name), "
        "`text`, or `auto`: text on a terminal, JSON otherwise.",
    )


@dataclass(frozen=True)
class ClientSettings:
    """Client commands: how they reach a server. No server reads these."""

    target: str = setting(
        "FUSOU_TARGET",
        "localhost:50051",
        str,
        "Client commands: the server's host:port (`--target` overrides it).",
    )
    flight_target: str | None = setting(
        "FUSOU_FLIGHT_TARGET",
        None,
        optional_text,
        "Client commands: the reader's Arrow Flight host:port, which `fusou read` reads "
        "through (`--flight-target` overrides it). Unset: the host of the target, port 8815.",
    )
    # A secret: kept out of repr, hence out of logs and tracebacks.
    token: str | None = setting(
        "FUSOU_TOKEN",
        None,
        optional_text,
        "Client commands: the bearer token sent with every call.",
        secret=True,
    )
    ca_file: str | None = setting(
        "FUSOU_TARGET_CA_FILE",
        None,
        optional_text,
        "Client commands: connect with TLS, trusting the PEM certificates in this file.",
    )
    tls: bool = setting(
        "FUSOU_TARGET_TLS",
        False,
        boolean,
        "Client commands: connect with TLS, trusting the system's certificate authorities.",
    )


@dataclass(frozen=True)
class Settings:
    """Every setting, validated once at start by ``from_env``."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    rows: RowSettings = field(default_factory=RowSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    upload: UploadSettings = field(default_factory=UploadSettings)
    archive: ArchiveSettings = field(default_factory=ArchiveSettings)
    reader: ReaderSettings = field(default_factory=ReaderSettings)
    compact: CompactSettings = field(default_factory=CompactSettings)
    lake: LakeSettings = field(default_factory=LakeSettings)
    log: LogSettings = field(default_factory=LogSettings)
    client: ClientSettings = field(default_factory=ClientSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the ``FUSOU_*`` variables of ``env`` (default: the process's) give; a
        ConfigError names every bad variable at once."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        problems: list[str] = []
        for var in VARIABLES:
            raw = source.get(var.env)
            if raw is None:
                continue
            try:
                values[var.key] = var.parse(raw)
            except ValueError as exc:
                problems.append(f"{var.env}: {exc}")

        def value(key: str) -> Any:
            return values[key] if key in values else _BY_KEY[key].default

        if value("min_time_ms") > value("max_time_ms"):
            problems.append(
                "FUSOU_MIN_TIME_MS and FUSOU_MAX_TIME_MS: the minimum is after the maximum"
            )
        if bool(value("tls_cert_file")) != bool(value("tls_key_file")):
            problems.append("FUSOU_TLS_CERT_FILE and FUSOU_TLS_KEY_FILE: set both or neither")
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
        return cls().replace(**values)

    def replace(self, **changes: Any) -> Settings:
        """These settings with some values changed, each named by its variable without the
        prefix in lower case (``archive_min_age_s=0`` sets ``archive.min_age_s``)."""
        by_section: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            var = _BY_KEY.get(key)
            if var is None:
                raise TypeError(f"no setting named {key!r}")
            by_section.setdefault(var.section, {})[var.field] = value
        sections = {
            name: dataclasses.replace(getattr(self, name), **fields)
            for name, fields in by_section.items()
        }
        return dataclasses.replace(self, **sections)


def _declared() -> Iterator[Variable]:
    for section in dataclasses.fields(Settings):
        # Each section field's default factory is its section's class.
        cls = section.default_factory
        if not isinstance(cls, type):
            raise TypeError(f"Settings.{section.name} is not a settings section")
        yield from variables(section.name, cls)


VARIABLES: tuple[Variable, ...] = tuple(_declared())
_BY_KEY = {var.key: var for var in VARIABLES}
