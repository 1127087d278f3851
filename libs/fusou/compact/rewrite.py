"""Compaction's CPU part: decode a table's inputs, reconcile them into the latest schema, drop
the rows the dedup rule can never return, sort by (time, seq) and write Parquet.

It runs on threads of its own (``RewriteThreads``), apart from the CPU thread that requests
(ingest, reads) share: a rewrite may take seconds, and they must not queue behind it.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pyarrow as pa

from fusou.catalog.tables import TableInfo
from fusou.compact.inputs import InputFile, in_time_order
from fusou.compact.output import OutputFile, ParquetFilesWriter
from fusou.formats.avro_container import SEQ_FIELD
from fusou.formats.file_metadata import FileDescription
from fusou.read.deletions import Deletion, drop_deleted
from fusou.read.fetch import Span
from fusou.read.files import decode_file_blocks, decode_whole_parquet, whole_file_span
from fusou.read.merge import merge, read_schema

# Inputs decoded ahead of the writer when they stream through it one by one.
DECODE_AHEAD = 2


@dataclass
class _Pools:
    # Decoding a run's input files, apart from the codec threads that Avro decoding uses.
    decode: ThreadPoolExecutor
    # The rewrite itself.
    rewrite: ThreadPoolExecutor
    # Encoding the rewrite's row groups, while the rewrite thread prepares the next ones.
    encode: ThreadPoolExecutor


class RewriteThreads:
    """The threads a compactor's rewrites run on: created at the first rewrite, shut down by
    ``close`` (a later rewrite creates them again)."""

    def __init__(self) -> None:
        self._pools: _Pools | None = None
        self._lock = threading.Lock()

    def _get(self) -> _Pools:
        with self._lock:
            if self._pools is None:
                self._pools = _Pools(
                    ThreadPoolExecutor(max_workers=2, thread_name_prefix="fusou-compact"),
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusou-rewrite"),
                    ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusou-encode"),
                )
            return self._pools

    async def rewrite(
        self,
        inputs: list[InputFile],
        fetched: dict[Span, bytes],
        info: TableInfo,
        target_bytes: int,
        row_group_rows: int,
        deletions: list[Deletion],
    ) -> tuple[list[OutputFile], int, int]:
        """``rewrite`` on the rewrite thread."""
        pools = self._get()
        return await asyncio.get_running_loop().run_in_executor(
            pools.rewrite,
            rewrite,
            inputs,
            fetched,
            info,
            target_bytes,
            row_group_rows,
            pools.decode,
            pools.encode,
            deletions,
        )

    def close(self) -> None:
        """Shut the threads down; a rewrite still running finishes on its thread first."""
        with self._lock:
            pools, self._pools = self._pools, None
        if pools is not None:
            for pool in (pools.rewrite, pools.decode, pools.encode):
                pool.shutdown(wait=False, cancel_futures=True)


def compaction_keys(info: TableInfo) -> tuple[str, ...]:
    """The dedup rule's key plus the time. Reads apply the rule among the rows of their range,
    so a row may be dropped for good only when its winner (same key, higher seq) shares its
    time: then every range holding the row holds the winner too. The whole-record key already
    includes the time."""
    if not info.key_fields or info.time_field in info.key_fields:
        return info.key_fields
    return (*info.key_fields, info.time_field)


def describe(info: TableInfo) -> FileDescription:
    """What the table's compacted files say about themselves: they hold its latest schema
    version (every input is conformed to it), and its declared key fields, not the
    compaction's keys (which add the time for a reason of compaction's own)."""
    return FileDescription(
        dataset=info.dataset_id,
        table=info.name,
        schema_version=info.latest.version,
        key_fields=info.key_fields,
        time_field=info.time_field,
        seq_field=SEQ_FIELD,
    )


def rewrite(
    inputs: list[InputFile],
    fetched: dict[Span, bytes],
    info: TableInfo,
    target_bytes: int,
    row_group_rows: int,
    decode_threads: ThreadPoolExecutor,
    encode_thread: ThreadPoolExecutor,
    deletions: Sequence[Deletion] = (),
) -> tuple[list[OutputFile], int, int]:
    """Decode, reconcile, deduplicate, sort and write the inputs (CPU work, on a thread):
    the compacted files, their rows, and the duplicates dropped. Rows the deletions hide are
    left out first, as reads leave them out.

    Inputs whose time ranges do not overlap (the common case: uploads and archives of
    successive periods) stream through the writer one by one, each sorted on its own, while
    the next one decodes; otherwise every input is decoded and sorted together.
    """
    latest = info.latest
    keys = compaction_keys(info)
    writer = ParquetFilesWriter(
        read_schema(latest), describe(info), target_bytes, row_group_rows, encode_thread
    )

    def decode(f: InputFile) -> list[pa.Table]:
        if f.ref.parquet:
            parts = [decode_whole_parquet(f.ref, fetched.pop(whole_file_span(f.ref)), latest)]
        else:
            blocks = [fetched.pop(b.span) for b in f.blocks]
            parts = decode_file_blocks(list(f.blocks), blocks, latest)
        return drop_deleted(parts, deletions, latest)[0]

    ordered = in_time_order(inputs)
    duplicates = 0
    if ordered is None:
        parts = [t for tables in decode_threads.map(decode, inputs) for t in tables]
        table, duplicates = merge(parts, latest, keys, None, None)
        del parts
        writer.add(table)
        del table
        return writer.finish(), writer.rows, duplicates
    ahead = deque(decode_threads.submit(decode, f) for f in ordered[:DECODE_AHEAD])
    for i in range(len(ordered)):
        parts = ahead.popleft().result()
        if i + DECODE_AHEAD < len(ordered):
            ahead.append(decode_threads.submit(decode, ordered[i + DECODE_AHEAD]))
        table, dropped = merge(parts, latest, keys, None, None)
        duplicates += dropped
        writer.add(table)
    return writer.finish(), writer.rows, duplicates
