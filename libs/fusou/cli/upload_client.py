"""``fusou upload``: Parquet files sent as one raw bundle to UploadRaw."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from fusou.api.ingest.upload_requests import Part, upload_requests
from fusou.api.ingest.v1 import ingest_pb2_grpc
from fusou.cli.admin_client import as_json
from fusou.cli.connection import Connection
from fusou.cli.input_error import InputError


def parse_fragments(specs: Sequence[str]) -> list[Part]:
    parts = []
    for spec in specs:
        table, sep, path = spec.partition("=")
        if not sep or not table or not path:
            raise InputError(f"{spec!r}: expected TABLE=FILE.parquet")
        file = Path(path)
        if not file.is_file():
            raise InputError(f"{path}: no such file")
        parts.append(Part(table, file))
    return parts


def run_upload(
    conn: Connection, dataset: str, specs: Sequence[str], *, request_id: str, timeout: float
) -> str:
    parts = parse_fragments(specs)
    with conn.channel() as channel:
        response = ingest_pb2_grpc.IngestServiceStub(channel).UploadRaw(
            upload_requests(dataset, parts, request_id), timeout=timeout, metadata=conn.metadata
        )
    return as_json(response)
