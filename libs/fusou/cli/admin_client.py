"""``fusou archive``, ``compact``, ``purge``, ``delete``, ``retention``, ``declare`` and
``stats``: clients of Archive, Compact, PurgeDataset, DeleteRows, EnforceRetention,
DeclareTable and GetStats, for people and for the Kubernetes CronJobs (a JSON summary on stdout, one line on
stderr per table that failed, and a non-zero exit when the call or any table fails)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.api.compactor.v1 import compactor_pb2, compactor_pb2_grpc
from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.api.reader.v1 import reader_pb2, reader_pb2_grpc
from fusou.api.timestamps import timestamp_of_ms
from fusou.cli.connection import Connection
from fusou.cli.input_error import InputError


def as_json(message: Message) -> str:
    data: dict[str, Any] = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps(data, indent=2)


class _Elapsed:
    """A 'still working' line on a terminal's stderr while a long call runs."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.wait(0.5):
            sys.stderr.write(f"\r{self._label}... {time.monotonic() - start:5.0f}s")
            sys.stderr.flush()
        sys.stderr.write("\r" + " " * (len(self._label) + 12) + "\r")

    def __enter__(self) -> _Elapsed:
        if sys.stderr.isatty():
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def run_archive(
    conn: Connection,
    *,
    dataset: str,
    table: str,
    min_age_seconds: float | None,
    max_rows_per_table: int,
    timeout: float,
) -> tuple[str, list[str]]:
    """The JSON summary, and what failed (a table, the sweep), one line each."""
    request = archiver_pb2.ArchiveRequest(
        dataset_id=dataset, table=table, max_rows_per_table=max_rows_per_table
    )
    if min_age_seconds is not None:
        request.min_age_seconds = int(min_age_seconds)
    with conn.channel() as channel, _Elapsed("archiving"):
        response = archiver_pb2_grpc.ArchiverServiceStub(channel).Archive(
            request, timeout=timeout, metadata=conn.metadata
        )
    failures = [
        f"{t.dataset_id}/{t.table}: {t.error}"
        for t in response.tables
        if t.status == archiver_pb2.TABLE_ARCHIVE_STATUS_FAILED
    ]
    if response.sweep_error:
        failures.append(f"sweeping orphans: {response.sweep_error}")
    if response.lake_error:
        failures.append(f"publishing to the lake: {response.lake_error}")
    return as_json(response), failures


def run_stats(conn: Connection, *, dataset: str, table: str, timeout: float) -> str:
    with conn.channel() as channel:
        response = reader_pb2_grpc.ReaderServiceStub(channel).GetStats(
            reader_pb2.GetStatsRequest(dataset_id=dataset, table=table),
            timeout=timeout,
            metadata=conn.metadata,
        )
    return as_json(response)


def run_compact(
    conn: Connection, *, dataset: str, table: str, timeout: float
) -> tuple[str, list[str]]:
    """The JSON summary, and what failed (a dataset, with the tables it names), one line each."""
    request = compactor_pb2.CompactRequest(dataset_id=dataset, table=table)
    with conn.channel() as channel, _Elapsed("compacting"):
        response = compactor_pb2_grpc.CompactorServiceStub(channel).Compact(
            request, timeout=timeout, metadata=conn.metadata
        )
    failures = [
        f"{d.dataset_id}: {d.error}"
        for d in response.datasets
        if d.status == compactor_pb2.COMPACT_STATUS_FAILED
    ]
    return as_json(response), failures


def run_purge(conn: Connection, *, dataset: str, timeout: float) -> tuple[str, list[str]]:
    """The JSON summary, and what the verification found left when the purge is incomplete."""
    request = archiver_pb2.PurgeDatasetRequest(dataset_id=dataset)
    with conn.channel() as channel, _Elapsed(f"purging {dataset}"):
        response = archiver_pb2_grpc.ArchiverServiceStub(channel).PurgeDataset(
            request, timeout=timeout, metadata=conn.metadata
        )
    failures = []
    if not response.complete:
        left = ", ".join(f"{kind}: {n}" for kind, n in sorted(response.remaining.items()))
        failures.append(f"incomplete, still there: {left}; run `fusou purge` again")
    return as_json(response), failures


def run_delete(
    conn: Connection,
    *,
    dataset: str,
    table: str,
    start: int,
    end: int,
    filters: Sequence[reader_pb2.Filter],
    timeout: float,
) -> str:
    request = archiver_pb2.DeleteRowsRequest(
        dataset_id=dataset,
        table=table,
        start_time=timestamp_of_ms(start),
        end_time=timestamp_of_ms(end),
        filters=list(filters),
    )
    with conn.channel() as channel:
        response = archiver_pb2_grpc.ArchiverServiceStub(channel).DeleteRows(
            request, timeout=timeout, metadata=conn.metadata
        )
    return as_json(response)


def run_retention(
    conn: Connection, *, dataset: str, table: str, timeout: float
) -> tuple[str, list[str]]:
    """The JSON summary, and the tables that failed, one line each."""
    request = archiver_pb2.EnforceRetentionRequest(dataset_id=dataset, table=table)
    with conn.channel() as channel, _Elapsed("enforcing retention"):
        response = archiver_pb2_grpc.ArchiverServiceStub(channel).EnforceRetention(
            request, timeout=timeout, metadata=conn.metadata
        )
    failures = [f"{t.dataset_id}/{t.table}: {t.error}" for t in response.tables if t.error]
    return as_json(response), failures


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_retention(text: str) -> int:
    """Milliseconds from ``30d``, ``12h``, ``90m``, ``3600s`` or a number of seconds."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:], 0)
    number = value[:-1] if unit else value
    try:
        amount = float(number)
    except ValueError:
        raise InputError(
            f"--retention {text!r}: expected a duration such as 30d, 12h, 90m or 3600s"
        ) from None
    if not amount >= 0 or amount == float("inf"):
        raise InputError(f"--retention {text!r}: must be a finite duration, 0 or more")
    return round(amount * (unit or 1) * 1000)


def run_declare(
    conn: Connection,
    *,
    dataset: str,
    table: str,
    time_field: str,
    key_fields: Sequence[str],
    avro_schema: str,
    retention: str | None,
    timeout: float,
) -> str:
    request = ingest_pb2.DeclareTableRequest(
        dataset_id=dataset,
        table=table,
        time_field=time_field,
        key_fields=list(key_fields),
        avro_schema=avro_schema,
    )
    if retention is not None:
        request.retention.FromMilliseconds(parse_retention(retention))
    with conn.channel() as channel:
        response = ingest_pb2_grpc.IngestServiceStub(channel).DeclareTable(
            request, timeout=timeout, metadata=conn.metadata
        )
    return as_json(response)
