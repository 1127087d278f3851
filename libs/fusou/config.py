"""Configuration from ``FUSOU_*`` environment variables, validated once at start.

Every variable is listed in ``VARIABLES`` with its default and a description, which is what
``fusou config`` prints and what the README's table is checked against.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from fusou.schema.time_bounds import MAX_SPAN_S, MAX_TIME_MS, MIN_TIME_MS

MiB = 1024 * 1024


class ConfigError(Exception):
    """One or more variables are invalid; the message names each of them."""


def read_configured_file(variable: str, path: str) -> bytes:
    """The bytes of the file ``variable`` names; a ConfigError names the variable and path."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path} ({exc})") from None


@dataclass(frozen=True)
class Variable:
    env: str
    attr: str
    default: Any
    parse: Callable[[str], Any]
    help: str


def _int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"must be an integer (got {raw!r})") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {bound} (got {value})")
        return value

    return parse


def _float_min(low: float, high: float | None = None) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number (got {raw!r})") from None
        # nan passes every comparison and inf overflows every conversion to an integer.
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number (got {raw!r})")
        if value < low:
            raise ValueError(f"must be at least {low} (got {value})")
        if high is not None and value > high:
            raise ValueError(f"must be at most {high} (got {value})")
        return value

    return parse


def _optional_str(raw: str) -> str | None:
    return raw.strip() or None


def _database_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql:// URL")
    return value


def _object_store_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if value.startswith("s3://"):
        if not value[len("s3://") :].split("/", 1)[0]:
            raise ValueError("an s3:// URL must name a bucket: s3://bucket/prefix")
        return value
    if value.startswith("file://"):
        if not value[len("file://") :].startswith("/"):
            raise ValueError("a file:// URL must hold an absolute path: file:///path")
        return value
    raise ValueError(f"must be s3://bucket/prefix or file:///path (got {value!r})")


def _set_means_on(raw: str) -> str:
    # Set but empty (a blank ConfigMap value, a template that rendered nothing) must not turn
    # authentication off: that would open every dataset to everyone.
    if not raw.strip():
        raise ValueError("is set but empty: give a value, or unset it to run without tokens")
    return raw


def _optional_port(raw: str) -> int | None:
    if not raw.strip():
        return None
    return _int_range(1, 65535)(raw)


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false (got {raw!r})")


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)} (got {raw!r})")
        return value

    return parse


VARIABLES: tuple[Variable, ...] = (
    Variable(
        "FUSOU_DATABASE_URL",
        "database_url",
        None,
        _database_url,
        "PostgreSQL DSN of the buffer and catalog. Unset: `fusou up` starts a private server.",
    ),
    Variable(
        "FUSOU_OBJECT_STORE_URL",
        "object_store_url",
        None,
        _object_store_url,
        "s3://bucket/prefix or file:///path. Unset: `fusou up` uses a local directory.",
    ),
    Variable(
        "FUSOU_S3_ENDPOINT_URL",
        "s3_endpoint_url",
        None,
        _optional_str,
        "S3 endpoint for MinIO, R2 or a test server. Unset: AWS.",
    ),
    Variable(
        "FUSOU_S3_REGION",
        "s3_region",
        None,
        _optional_str,
        "S3 region. Unset: the AWS_* variables or the SDK default.",
    ),
    Variable(
        "FUSOU_DATA_DIR",
        "data_dir",
        None,
        _optional_str,
        "Where `fusou up` keeps its embedded PostgreSQL and local object store. "
        "Unset: ~/.local/share/fusou.",
    ),
    Variable("FUSOU_GRPC_HOST", "grpc_host", "[::]", str, "Address the gRPC server binds."),
    Variable(
        "FUSOU_GRPC_PORT",
        "grpc_port",
        50051,
        _int_range(0, 65535),
        "Port of the gRPC server (0 picks a free port).",
    ),
    Variable(
        "FUSOU_GRPC_MAX_MESSAGE_BYTES",
        "grpc_max_message_bytes",
        64 * MiB,
        _int_range(1024, 2**31 - 1),
        "Largest gRPC message accepted or sent.",
    ),
    Variable(
        "FUSOU_SHUTDOWN_GRACE_S",
        "shutdown_grace_s",
        15.0,
        _float_min(0.0),
        "On SIGTERM, how long in-flight calls may take to finish.",
    ),
    Variable(
        "FUSOU_SHUTDOWN_DRAIN_S",
        "shutdown_drain_s",
        0.0,
        _float_min(0.0),
        "On SIGTERM, how long health reports NOT_SERVING while new calls are still accepted, "
        "so load balancers stop routing here before the listener closes.",
    ),
    Variable(
        "FUSOU_TLS_CERT_FILE",
        "tls_cert_file",
        None,
        _optional_str,
        "PEM certificate chain of the gRPC server. Set with FUSOU_TLS_KEY_FILE: the port speaks "
        "TLS only. Unset: plaintext.",
    ),
    Variable(
        "FUSOU_TLS_KEY_FILE",
        "tls_key_file",
        None,
        _optional_str,
        "PEM private key of FUSOU_TLS_CERT_FILE.",
    ),
    Variable(
        "FUSOU_HEALTH_PORT",
        "health_port",
        None,
        _optional_port,
        "A second, plaintext port serving only grpc.health.v1 (for Kubernetes probes, which do "
        "not speak TLS). Unset: none.",
    ),
    Variable(
        "FUSOU_AUTH_TOKENS",
        "auth_tokens",
        None,
        _set_means_on,
        "Bearer tokens as a JSON list of {name, sha256, role, datasets} (see `fusou token`). "
        "Unset, and FUSOU_AUTH_TOKENS_FILE unset: every client may call every RPC.",
    ),
    Variable(
        "FUSOU_AUTH_TOKENS_FILE",
        "auth_tokens_file",
        None,
        _set_means_on,
        "A file holding the same JSON list (added to FUSOU_AUTH_TOKENS).",
    ),
    Variable(
        "FUSOU_METRICS_PORT",
        "metrics_port",
        9464,
        _int_range(0, 65535),
        "Port of the Prometheus endpoint (/metrics, HTTP) on FUSOU_GRPC_HOST (0 picks a free port).",
    ),
    Variable(
        "FUSOU_METRICS_INTERVAL_S",
        "metrics_interval_s",
        15.0,
        _float_min(0.1),
        "How often the buffer's depth and oldest row age are read for the metrics.",
    ),
    Variable(
        "FUSOU_READINESS_INTERVAL_S",
        "readiness_interval_s",
        5.0,
        _float_min(0.1),
        "How often the `readiness` health status checks PostgreSQL and the object store.",
    ),
    Variable(
        "FUSOU_READINESS_TIMEOUT_S",
        "readiness_timeout_s",
        3.0,
        _float_min(0.1),
        "How long a readiness check may take before the dependency counts as unreachable.",
    ),
    Variable(
        "FUSOU_DB_POOL_SIZE",
        "db_pool_size",
        10,
        _int_range(1, 1000),
        "Connections per service process.",
    ),
    Variable(
        "FUSOU_DB_ACQUIRE_TIMEOUT_S",
        "db_acquire_timeout_s",
        30.0,
        _float_min(0.1),
        "How long a call waits for a free PostgreSQL connection before it answers UNAVAILABLE "
        "(the pool is exhausted).",
    ),
    Variable(
        "FUSOU_INGEST_MAX_ROWS",
        "ingest_max_rows",
        100_000,
        _int_range(1),
        "Most rows one Ingest request may carry.",
    ),
    Variable(
        "FUSOU_INGEST_MAX_BYTES",
        "ingest_max_bytes",
        32 * MiB,
        _int_range(1),
        "Largest Arrow IPC payload one Ingest request may carry, as sent and as decoded.",
    ),
    Variable(
        "FUSOU_MAX_FIELDS",
        "max_fields",
        1000,
        _int_range(1, 10_000),
        "Most fields one row may have (Ingest, UploadRaw columns, DeclareTable), and most fields "
        "a table's schema may grow to.",
    ),
    Variable(
        "FUSOU_MAX_NESTING_DEPTH",
        "max_nesting_depth",
        16,
        # protobuf parses a Struct nested at most 32 objects deep: a deeper value could be
        # stored but not read back as JSON rows.
        _int_range(1, 32),
        "Most levels of objects and lists nested in one field's value.",
    ),
    Variable(
        "FUSOU_MAX_ROW_BYTES",
        "max_row_bytes",
        1 * MiB,
        _int_range(1024, 64 * MiB),
        "Largest row: the sum of its values' sizes (strings, bytes and nested JSON by length, "
        "numbers 8 bytes).",
    ),
    Variable(
        "FUSOU_MIN_TIME_MS",
        "min_time_ms",
        MIN_TIME_MS,
        _int_range(MIN_TIME_MS, MAX_TIME_MS),
        "Earliest record time accepted, in epoch milliseconds (default 0001-01-01T00:00:00Z, "
        "the earliest the storage formats hold; may be narrowed, not widened).",
    ),
    Variable(
        "FUSOU_MAX_TIME_MS",
        "max_time_ms",
        MAX_TIME_MS,
        _int_range(MIN_TIME_MS, MAX_TIME_MS),
        "Latest record time accepted, in epoch milliseconds (default 9999-12-31T23:59:59.999Z, "
        "the latest the storage formats hold; may be narrowed, not widened).",
    ),
    Variable(
        "FUSOU_GROUP_COMMIT_MAX_ROWS",
        "group_commit_max_rows",
        200_000,
        _int_range(1),
        "Most rows committed together in one group-commit transaction.",
    ),
    Variable(
        "FUSOU_GROUP_COMMIT_CONCURRENCY",
        "group_commit_concurrency",
        4,
        _int_range(1, 64),
        "Group-commit transactions in flight at once per process.",
    ),
    Variable(
        "FUSOU_CPU_WORKERS",
        "cpu_workers",
        1,
        _int_range(0, 64),
        "Worker processes for CPU-heavy work (parsing, encoding, compression); 0 runs it on a thread.",
    ),
    Variable(
        "FUSOU_DELETE_GRACE_S",
        "delete_grace_s",
        3600.0,
        _float_min(0.0),
        "Replaced or orphaned objects are deleted only after this many seconds.",
    ),
    Variable(
        "FUSOU_ARCHIVE_MIN_AGE_S",
        "archive_min_age_s",
        3600.0,
        _float_min(0.0, float(MAX_SPAN_S)),
        "Hot rows younger than this stay in the buffer.",
    ),
    Variable(
        "FUSOU_ARCHIVE_CODEC",
        "archive_codec",
        "deflate",
        _choice("deflate", "null", "snappy", "zstandard"),
        "Avro codec of cold files.",
    ),
    Variable(
        "FUSOU_ARCHIVE_BLOCK_ROWS",
        "archive_block_rows",
        4096,
        _int_range(1, 1_000_000),
        "Most rows per Avro block of a cold file (one block is what a reader fetches at once).",
    ),
    Variable(
        "FUSOU_ARCHIVE_BLOCK_BYTES",
        "archive_block_bytes",
        1 * MiB,
        _int_range(1024),
        "Most uncompressed bytes per Avro block.",
    ),
    Variable(
        "FUSOU_ARCHIVE_MAX_FILE_BYTES",
        "archive_max_file_bytes",
        128 * MiB,
        _int_range(64 * 1024),
        "A cold file is closed once it holds this many bytes (it may exceed it by one block).",
    ),
    Variable(
        "FUSOU_READER_CACHE_BYTES",
        "reader_cache_bytes",
        256 * MiB,
        _int_range(0),
        "Memory for decoded cold blocks per reader process (0 disables the cache).",
    ),
    Variable(
        "FUSOU_READER_MAX_CONCURRENT_GETS",
        "reader_max_concurrent_gets",
        16,
        _int_range(1, 1024),
        "Ranged GETs one read issues at once.",
    ),
    Variable(
        "FUSOU_READER_COALESCE_GAP_BYTES",
        "reader_coalesce_gap_bytes",
        256 * 1024,
        _int_range(0),
        "Blocks of one object closer than this are fetched with one GET.",
    ),
    Variable(
        "FUSOU_READER_MAX_REQUEST_BYTES",
        "reader_max_request_bytes",
        16 * MiB,
        _int_range(1024),
        "Largest merged GET (a single larger block is still one GET).",
    ),
    Variable(
        "FUSOU_COMPACT_MAX_DATASETS_PER_RUN",
        "compact_max_datasets_per_run",
        50,
        _int_range(1),
        "Scheduled compaction: datasets per run.",
    ),
    Variable(
        "FUSOU_COMPACT_CONCURRENCY",
        "compact_concurrency",
        2,
        _int_range(1, 64),
        "Scheduled compaction: datasets compacted at once.",
    ),
    Variable(
        "FUSOU_COMPACT_MAX_FRAGMENTS",
        "compact_max_fragments",
        1000,
        _int_range(1),
        "Most input files per table per run.",
    ),
    Variable(
        "FUSOU_COMPACT_MAX_BYTES",
        "compact_max_bytes",
        256 * MiB,
        _int_range(1),
        "Most input bytes per table per run, counted decoded (what the rows take in memory), "
        "which bounds a run's memory.",
    ),
    Variable(
        "FUSOU_COMPACT_TIMEOUT_MS",
        "compact_timeout_ms",
        600_000,
        _int_range(1),
        "Time bound of one compaction run.",
    ),
    Variable(
        "FUSOU_COMPACT_CLAIM_TTL_S",
        "compact_claim_ttl_s",
        60.0,
        _float_min(1.0),
        "A compaction run's claim on a dataset lasts this long unless renewed; the run renews "
        "it every third of that, so a dead runner's dataset is free again within this time.",
    ),
    Variable(
        "FUSOU_COMPACT_TARGET_FILE_BYTES",
        "compact_target_file_bytes",
        128 * MiB,
        _int_range(64 * 1024),
        "Size of compacted Parquet files; smaller optimized files are compacted again.",
    ),
    Variable(
        "FUSOU_COMPACT_ROW_GROUP_ROWS",
        "compact_row_group_rows",
        16384,
        _int_range(1, 10_000_000),
        "Rows per row group of a compacted file (one row group is what a reader fetches at once).",
    ),
    Variable(
        "FUSOU_UPLOAD_MAX_FRAGMENT_BYTES",
        "upload_max_fragment_bytes",
        128 * MiB,
        _int_range(1024),
        "Largest fragment of an UploadRaw bundle (each is checked in memory, one at a time).",
    ),
    Variable(
        "FUSOU_LOG_LEVEL",
        "log_level",
        "INFO",
        _choice("debug", "info", "warning", "error"),
        "Log level.",
    ),
    Variable(
        "FUSOU_LOG_FORMAT",
        "log_format",
        "auto",
        _choice("auto", "json", "text"),
        "Logs on standard error as JSON lines (one object per line, with the call's request "
        "id) or as text; auto: text on a terminal, JSON otherwise.",
    ),
    Variable(
        "FUSOU_TARGET",
        "target",
        "localhost:50051",
        str,
        "Client commands: the server's host:port (`--target` overrides it).",
    ),
    Variable(
        "FUSOU_TOKEN",
        "token",
        None,
        _optional_str,
        "Client commands: the bearer token sent with every call.",
    ),
    Variable(
        "FUSOU_TARGET_CA_FILE",
        "target_ca_file",
        None,
        _optional_str,
        "Client commands: connect with TLS, trusting the PEM certificates in this file.",
    ),
    Variable(
        "FUSOU_TARGET_TLS",
        "target_tls",
        False,
        _boolean,
        "Client commands: connect with TLS, trusting the system's certificate authorities.",
    ),
)


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    object_store_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    data_dir: str | None = None
    grpc_host: str = "[::]"
    grpc_port: int = 50051
    grpc_max_message_bytes: int = 64 * MiB
    shutdown_grace_s: float = 15.0
    shutdown_drain_s: float = 0.0
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    health_port: int | None = None
    auth_tokens: str | None = None
    auth_tokens_file: str | None = None
    metrics_port: int = 9464
    metrics_interval_s: float = 15.0
    readiness_interval_s: float = 5.0
    readiness_timeout_s: float = 3.0
    db_pool_size: int = 10
    db_acquire_timeout_s: float = 30.0
    ingest_max_rows: int = 100_000
    ingest_max_bytes: int = 32 * MiB
    max_fields: int = 1000
    max_nesting_depth: int = 16
    max_row_bytes: int = 1 * MiB
    min_time_ms: int = MIN_TIME_MS
    max_time_ms: int = MAX_TIME_MS
    group_commit_max_rows: int = 200_000
    group_commit_concurrency: int = 4
    cpu_workers: int = 1
    delete_grace_s: float = 3600.0
    archive_min_age_s: float = 3600.0
    archive_codec: str = "deflate"
    archive_block_rows: int = 4096
    archive_block_bytes: int = 1 * MiB
    archive_max_file_bytes: int = 128 * MiB
    reader_cache_bytes: int = 256 * MiB
    reader_max_concurrent_gets: int = 16
    reader_coalesce_gap_bytes: int = 256 * 1024
    reader_max_request_bytes: int = 16 * MiB
    compact_max_datasets_per_run: int = 50
    compact_concurrency: int = 2
    compact_max_fragments: int = 1000
    compact_max_bytes: int = 256 * MiB
    compact_timeout_ms: int = 600_000
    compact_claim_ttl_s: float = 60.0
    compact_target_file_bytes: int = 128 * MiB
    compact_row_group_rows: int = 16384
    upload_max_fragment_bytes: int = 128 * MiB
    log_level: str = "INFO"
    log_format: str = "auto"
    target: str = "localhost:50051"
    # A secret: kept out of repr, hence out of logs and tracebacks.
    token: str | None = field(default=None, repr=False)
    target_ca_file: str | None = None
    target_tls: bool = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        problems: list[str] = []
        for var in VARIABLES:
            raw = source.get(var.env)
            if raw is None:
                continue
            try:
                values[var.attr] = var.parse(raw)
            except ValueError as exc:
                problems.append(f"{var.env}: {exc}")
        if values.get("min_time_ms", MIN_TIME_MS) > values.get("max_time_ms", MAX_TIME_MS):
            problems.append(
                "FUSOU_MIN_TIME_MS and FUSOU_MAX_TIME_MS: the minimum is after the maximum"
            )
        if bool(values.get("tls_cert_file")) != bool(values.get("tls_key_file")):
            problems.append("FUSOU_TLS_CERT_FILE and FUSOU_TLS_KEY_FILE: set both or neither")
        if problems:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update(changes)
        return Settings(**current)


def _check_defaults() -> None:
    # The table of variables and the dataclass defaults must agree.
    defaults = Settings()
    for var in VARIABLES:
        if getattr(defaults, var.attr) != var.default:
            raise AssertionError(f"default of {var.env} differs from Settings.{var.attr}")


_check_defaults()
