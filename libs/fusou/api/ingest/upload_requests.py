"""Building UploadRaw requests: the manifest, then the fragments' bytes in chunks.

Used by ``fusou upload``, the tests and the benchmark. Fragments are read one chunk at a time,
so a bundle is never held whole on the client either.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fusou.api.ingest.v1 import ingest_pb2

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Part:
    """One fragment to send: a table and either bytes or a file."""

    table: str
    data: bytes | Path

    @property
    def length(self) -> int:
        return self.data.stat().st_size if isinstance(self.data, Path) else len(self.data)

    def chunks(self, size: int) -> Iterator[bytes]:
        if isinstance(self.data, bytes):
            for start in range(0, len(self.data), size):
                yield self.data[start : start + size]
            return
        with self.data.open("rb") as f:
            while chunk := f.read(size):
                yield chunk


def manifest_of(
    dataset_id: str, parts: Sequence[Part], request_id: str = ""
) -> ingest_pb2.RawManifest:
    fragments = []
    offset = 0
    for p in parts:
        fragments.append(ingest_pb2.RawFragment(table=p.table, offset=offset, length=p.length))
        offset += p.length
    return ingest_pb2.RawManifest(
        dataset_id=dataset_id, fragments=fragments, total_length=offset, request_id=request_id
    )


def upload_requests(
    dataset_id: str,
    parts: Sequence[Part],
    request_id: str = "",
    chunk_bytes: int = CHUNK_BYTES,
) -> Iterator[ingest_pb2.UploadRawRequest]:
    """The manifest, then the concatenated fragments in chunks of ``chunk_bytes``."""
    yield ingest_pb2.UploadRawRequest(manifest=manifest_of(dataset_id, parts, request_id))
    pending = b""
    for p in parts:
        for chunk in p.chunks(chunk_bytes):
            pending += chunk
            if len(pending) >= chunk_bytes:
                yield ingest_pb2.UploadRawRequest(chunk=pending)
                pending = b""
    if pending:
        yield ingest_pb2.UploadRawRequest(chunk=pending)
