"""Compacted files are self-describing (issue 15, an open lake): pyarrow, polars and DuckDB read
the time as a UTC millisecond timestamp, find the table's description in the footer and the
declared (time, seq) order in every row group; and a table holding files of the older form
(int64 time) next to new ones reads exactly what the oracle says, before and after they are
compacted together."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import fusou.compact.output
from fusou.api.ingest.v1 import ingest_pb2
from fusou.config import Settings
from fusou.formats.avro_container import INGESTED_AT_FIELD, SEQ_FIELD
from tests.archive.oracle import fetch
from tests.compact.oracle import (
    COMPACTED,
    NOTHING_TO_DO,
    PARTIAL,
    active_kinds,
    compact_until_done,
)
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, archive, ingest
from tests.read.test_equivalence import READS, battle, block_edge_reads, minute, read_all
from tests.upload.helpers import upload

pytestmark = pytest.mark.integration

DS = "u1"
UTC_MS = pa.timestamp("ms", tz="UTC")
# Row groups of 16 rows: files of several row groups, each declaring its order.
SMALL_GROUPS = {**SMALL_BLOCKS, "compact_row_group_rows": 16}


async def optimized_files(url: str, table: str) -> list[asyncpg.Record]:
    return await fetch(
        url,
        "SELECT o.object_key, f.byte_offset, f.byte_length, f.row_count, f.schema_version, "
        "(SELECT count(*) FROM fusou_blocks b WHERE b.file_id = f.file_id) AS blocks "
        "FROM fusou_files f JOIN fusou_objects o USING (object_id) "
        "JOIN fusou_tables t USING (table_id) "
        "WHERE t.dataset_id = $1 AND t.table_name = $2 AND o.kind = 'optimized' "
        "AND f.state = 'active' ORDER BY f.min_time",
        DS,
        table,
    )


async def saved(stubs: Stubs, file: asyncpg.Record, directory: Path) -> Path:
    """The file's bytes from the object store, as a local file every engine can open."""
    data = await stubs.services.runtime.store.get_range(
        file["object_key"], file["byte_offset"], file["byte_length"]
    )
    path = directory / Path(file["object_key"]).name
    path.write_bytes(data)
    return path


def expected_metadata(
    table: str, version: int, key_fields: Sequence[str], time_field: str
) -> dict[str, str]:
    return {
        "fusou.dataset": DS,
        "fusou.table": table,
        "fusou.schema_version": str(version),
        "fusou.key_fields": json.dumps(list(key_fields)),
        "fusou.time_field": time_field,
        "fusou.seq_field": SEQ_FIELD,
        "fusou.sort_order": json.dumps([time_field, SEQ_FIELD]),
    }


def check_with_pyarrow(
    path: Path, file: asyncpg.Record, meta: dict[str, str], oracle: Oracle
) -> list[tuple[int, int]]:
    """The (time, seq) of the file's rows, checked: typed time, metadata, declared and real
    order, and each row's time the one its seq was ingested with."""
    time_field = meta["fusou.time_field"]
    schema = pq.read_schema(path)
    assert schema.field(time_field).type == UTC_MS
    assert schema.field(SEQ_FIELD).type == pa.int64()
    assert {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()} == meta
    parquet = pq.ParquetFile(path).metadata
    assert {k.decode(): v.decode() for k, v in parquet.metadata.items()} == meta
    column = parquet.schema.column(parquet.schema.names.index(time_field))
    logical = json.loads(column.logical_type.to_json())
    assert (column.physical_type, logical["Type"], logical["timeUnit"]) == (
        "INT64",
        "Timestamp",
        "milliseconds",
    )
    assert logical["isAdjustedToUTC"] is True
    assert parquet.num_row_groups == file["blocks"] > 1
    order = (
        pq.SortingColumn(schema.get_field_index(time_field)),
        pq.SortingColumn(schema.get_field_index(SEQ_FIELD)),
    )
    for g in range(parquet.num_row_groups):
        assert parquet.row_group(g).sorting_columns == order
    rows = pq.read_table(path, columns=[time_field, SEQ_FIELD])
    times = rows.column(time_field).cast(pa.int64()).to_pylist()
    seqs = rows.column(SEQ_FIELD).to_pylist()
    pairs = list(zip(times, seqs, strict=True))
    assert len(pairs) == file["row_count"]
    assert pairs == sorted(pairs), "the rows are not in the (time, seq) order declared"
    ingested = {r.seq: r.record[time_field] for r in oracle.rows}
    assert all(ingested[seq] == t for t, seq in pairs)
    return pairs


def check_with_polars(path: Path, meta: dict[str, str], pairs: list[tuple[int, int]]) -> None:
    time_field = meta["fusou.time_field"]
    frame = pl.read_parquet(path)
    assert frame.schema[time_field] == pl.Datetime("ms", "UTC")
    got = frame.select(pl.col(time_field).dt.epoch("ms"), pl.col(SEQ_FIELD)).rows()
    assert got == pairs
    assert pl.read_parquet_metadata(path) == meta


def check_with_duckdb(path: Path, meta: dict[str, str], pairs: list[tuple[int, int]]) -> None:
    time_field = meta["fusou.time_field"]
    with duckdb.connect() as db:
        described = db.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        types = {row[0]: row[1] for row in described}
        assert types[time_field] == "TIMESTAMP WITH TIME ZONE"
        assert types[SEQ_FIELD] == "BIGINT"
        stored = db.execute(
            "SELECT logical_type FROM parquet_schema(?) WHERE name = ?", [str(path), time_field]
        ).fetchone()
        assert stored is not None
        assert "isAdjustedToUTC=1" in stored[0] and "MILLIS=MilliSeconds()" in stored[0]
        kv = db.execute("SELECT key, value FROM parquet_kv_metadata(?)", [str(path)]).fetchall()
        assert {k.decode(): v.decode() for k, v in kv} == meta
        got = db.execute(
            f'SELECT epoch_ms("{time_field}"), "{SEQ_FIELD}" FROM read_parquet(?)', [str(path)]
        ).fetchall()
        assert got == pairs


def dedup_with_duckdb(path: Path, meta: dict[str, str]) -> list[int]:
    """The times of the rows an engine keeps by the footer's rule alone: per key (the key
    fields, or every field of the record when there are none), the highest seq; in the
    declared order."""
    time_field = meta["fusou.time_field"]
    seq = meta["fusou.seq_field"]
    with duckdb.connect() as db:
        columns = [
            row[0]
            for row in db.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
        ]
        keys = json.loads(meta["fusou.key_fields"]) or [
            c for c in columns if c not in (seq, INGESTED_AT_FIELD)
        ]
        partition = ", ".join(f'"{k}"' for k in keys)
        rows = db.execute(
            f'SELECT epoch_ms("{time_field}") FROM read_parquet(?) '
            f'QUALIFY row_number() OVER (PARTITION BY {partition} ORDER BY "{seq}" DESC) = 1 '
            f'ORDER BY "{time_field}", "{seq}"',
            [str(path)],
        ).fetchall()
    return [t for (t,) in rows]


async def test_compacted_files_describe_themselves_to_pyarrow_polars_and_duckdb(
    settings: Settings, tmp_path: Path
) -> None:
    async with open_stubs(settings, **SMALL_GROUPS) as stubs:
        # A table keyed by the whole record, through Ingest, Archive and UploadRaw, with rows
        # sharing a time (their seq orders them).
        battles = Oracle()
        for n in range(3):
            rows = [battle(i) for i in range(20 * n, 20 * n + 20)]
            await ingest(stubs.ingest, battles, DS, "battle", rows)
        await archive(stubs.archiver, stubs.services.clock, DS, "battle")
        later = [battle(i) for i in range(60, 90)]
        await upload(stubs.ingest, stubs.url, DS, [("battle", later)], {"battle": battles})
        # A table declared with key fields and a time field of its own name.
        await stubs.ingest.DeclareTable(
            ingest_pb2.DeclareTableRequest(
                dataset_id=DS, table="fleet", time_field="at", key_fields=["ship_id", "slot"]
            )
        )
        fleets = Oracle(time_field="at", key_fields=("ship_id", "slot"))
        fleet_rows = [
            {"at": minute(i // 2), "ship_id": i % 7, "slot": i % 3, "name": f"s{i}"}
            for i in range(50)
        ]
        await ingest(stubs.ingest, fleets, DS, "fleet", fleet_rows)
        await archive(stubs.archiver, stubs.services.clock, DS, "fleet")

        results = await compact_until_done(stubs.compactor, DS)
        assert results[-1].status == COMPACTED
        for table, oracle, keys in (
            ("battle", battles, ()),
            ("fleet", fleets, ("ship_id", "slot")),
        ):
            (file,) = await optimized_files(stubs.url, table)
            meta = expected_metadata(table, file["schema_version"], keys, oracle.time_field)
            path = await saved(stubs, file, tmp_path)
            pairs = check_with_pyarrow(path, file, meta, oracle)
            check_with_polars(path, meta, pairs)
            check_with_duckdb(path, meta, pairs)
            # An engine applying the footer's dedup rule keeps what ReadRange returns.
            got = await read_all(stubs, oracle, DS, table, [READS[0]], compacted=True)
            assert [r[oracle.time_field] for r in got["whole"]] == dedup_with_duckdb(path, meta)


async def compact_one_by_one(stubs: Stubs) -> None:
    """Compact until no new input is left, one input per run (the last run finds only
    compacted files, which it leaves: it may merge only one)."""
    results = await compact_until_done(stubs.compactor, DS)
    assert results[0].status in (PARTIAL, COMPACTED)
    assert results[-1].status in (COMPACTED, NOTHING_TO_DO)
    assert set(await active_kinds(stubs.url)) == {"optimized"}


async def test_a_table_of_old_and_new_compacted_files_reads_as_the_oracle(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = "battle"
    oracle = Oracle()
    # One input per run: every run leaves a compacted file of its own, and small compacted
    # files are merged only once no new input is left, so old and new files stay side by side.
    one_input = {**SMALL_GROUPS, "compact_max_fragments": 1}
    async with open_stubs(settings, **one_input) as stubs:
        with monkeypatch.context() as patch:
            # The writer as it was before typed times: the time stays int64 in the file.
            patch.setattr(fusou.compact.output, "stored_times", lambda column: column)
            await ingest(stubs.ingest, oracle, DS, table, [battle(i) for i in range(60)])
            await archive(stubs.archiver, stubs.services.clock, DS, table)
            await compact_one_by_one(stubs)
        old = {f["object_key"] for f in await optimized_files(stubs.url, table)}
        assert len(old) > 1
        # New rows, and whole-record duplicates of rows in the old files (newer seqs at the
        # same times: the dedup rule must pick them across the two forms of file).
        await ingest(stubs.ingest, oracle, DS, table, [battle(i) for i in range(60, 100)])
        await ingest(stubs.ingest, oracle, DS, table, [battle(i) for i in range(20, 30)])
        await archive(stubs.archiver, stubs.services.clock, DS, table)
        await upload(
            stubs.ingest,
            stubs.url,
            DS,
            [(table, [battle(i) for i in range(100, 120)]), (table, [battle(44), battle(45)])],
            {table: oracle},
        )
        await compact_one_by_one(stubs)
        files = await optimized_files(stubs.url, table)
        forms: dict[str, pa.DataType] = {}
        for f in files:
            data = await stubs.services.runtime.store.get_range(
                f["object_key"], f["byte_offset"], f["byte_length"]
            )
            forms[f["object_key"]] = pq.read_schema(pa.BufferReader(data)).field("timestamp").type
        assert {forms[k] for k in old} == {pa.int64()}
        assert {t for k, t in forms.items() if k not in old} == {UTC_MS}
        assert oracle.duplicates(0, 2**62) >= 12
        reads = [*READS, *await block_edge_reads(stubs, DS, table)]
        mixed = await read_all(stubs, oracle, DS, table, reads, compacted=True)

    # Old and new files compacted together: the old ones are read as compaction inputs.
    async with open_stubs(settings, **SMALL_GROUPS) as stubs:
        results = await compact_until_done(stubs.compactor, DS)
        assert [r.status for r in results] == [COMPACTED]
        (merged,) = await optimized_files(stubs.url, table)
        data = await stubs.services.runtime.store.get_range(
            merged["object_key"], merged["byte_offset"], merged["byte_length"]
        )
        assert pq.read_schema(pa.BufferReader(data)).field("timestamp").type == UTC_MS
        times = pq.read_table(pa.BufferReader(data)).column("timestamp").cast(pa.int64())
        assert bool(np.all(np.diff(times.to_numpy()) >= 0))
        after = await read_all(stubs, oracle, DS, table, reads, compacted=True)
        assert after == mixed
