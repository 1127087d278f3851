"""``fusou ingest DATASET TABLE FILE``: the installed script in a subprocess (it uses a sync gRPC
channel) against the ingest service hosted in the test process, checked in the buffer."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path
from typing import Any

import asyncpg
import fastavro
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusou.testing import ServicesUnderTest
from tests.support.grpcurl import FUSOU, Result, arun, clean_env

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


def json_row(i: int) -> dict[str, Any]:
    return {
        "timestamp": T0 + i,
        "api_no": i,
        "hp": i + 0.5,  # never whole, so every batch infers a double
        "name": f"ship-{i}",
        "flagship": i % 2 == 0,
        "note": None if i % 3 else f"note {i}",
        "detail": {"slot": [i, i + 1], "kind": "torpedo"},
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


async def fusou_ingest(
    target: str, dataset: str, table: str, path: Path, *extra: str, batch_size: int = 1000
) -> Result:
    return await arun(
        [
            FUSOU,
            "ingest",
            dataset,
            table,
            str(path),
            "--target",
            target,
            "--batch-size",
            str(batch_size),
            *extra,
        ],
        env=clean_env(),
        time_limit=60,
    )


async def buffer_count(
    database_url: str, dataset: str | None = None, table: str | None = None
) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        if dataset is None:
            count = await conn.fetchval("SELECT count(*) FROM fusou_buffer")
        else:
            count = await conn.fetchval(
                """
                SELECT count(*) FROM fusou_buffer b
                JOIN fusou_tables t USING (table_id)
                WHERE t.dataset_id = $1 AND t.table_name = $2
                """,
                dataset,
                table,
            )
        return int(count)
    finally:
        await conn.close()


async def stored_record(database_url: str, dataset: str, table: str, event_time: int) -> Any:
    """The buffer row of ``event_time`` decoded with the schema version it was written under."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            """
            SELECT b.record, b.schema_version, s.avro_schema
            FROM fusou_buffer b
            JOIN fusou_tables t USING (table_id)
            JOIN fusou_table_schemas s
              ON s.table_id = b.table_id AND s.version = b.schema_version
            WHERE t.dataset_id = $1 AND t.table_name = $2 AND b.event_time = $3
            """,
            dataset,
            table,
            event_time,
        )
    finally:
        await conn.close()
    assert row is not None, f"no buffer row at {event_time}"
    raw = row["avro_schema"]
    schema = fastavro.parse_schema(json.loads(raw) if isinstance(raw, str) else raw)
    return fastavro.schemaless_reader(io.BytesIO(bytes(row["record"])), schema, None)


def assert_clean_failure(result: Result) -> None:
    assert result.returncode != 0, result.explain()
    assert "Traceback" not in result.stderr, result.explain()
    assert result.stdout.strip() == "", result.explain()


async def test_jsonl_in_batches_then_rerun_writes_nothing(
    services: ServicesUnderTest, database_url: str, tmp_path: Path
) -> None:
    rows = [json_row(i) for i in range(2500)]
    path = write_jsonl(tmp_path / "battle.jsonl", rows)

    # No --quiet: the progress bar must go to stderr, leaving stdout to the JSON summary.
    first = await fusou_ingest(services.target, "cli-ds", "battle", path, batch_size=1000)
    assert first.returncode == 0, first.explain()
    summary = json.loads(first.stdout)
    assert summary["rows"] == 2500
    assert summary["batches"] == 3
    assert summary["rows_written"] == 2500
    assert summary["batches_replayed"] == 0
    assert "2500" in first.stderr, first.explain()  # tqdm's final "2500/2500 rows" or "2500rows"
    assert await buffer_count(database_url) == 2500

    # The same command again: every batch is answered from the server's record.
    second = await fusou_ingest(services.target, "cli-ds", "battle", path, "--quiet")
    assert second.returncode == 0, second.explain()
    again = json.loads(second.stdout)
    assert again["batches"] == 3
    assert again["rows"] == 2500
    assert again["batches_replayed"] == 3
    assert await buffer_count(database_url) == 2500

    # What is stored is what was sent, field by field.
    for i in (0, 999, 1000, 2499):
        expected = rows[i]
        record = await stored_record(database_url, "cli-ds", "battle", T0 + i)
        assert record["timestamp"] == expected["timestamp"]
        assert record["api_no"] == expected["api_no"]
        assert record["hp"] == expected["hp"]
        assert record["name"] == expected["name"]
        assert record["flagship"] is expected["flagship"]
        assert record["note"] == expected["note"]
        # Nested values are kept as JSON text.
        assert json.loads(record["detail"]) == expected["detail"]
        assert set(record) == set(expected)


async def test_parquet_file_goes_as_arrow_ipc(
    services: ServicesUnderTest, database_url: str, tmp_path: Path
) -> None:
    n = 1200
    table = pa.table(
        {
            "timestamp": pa.array([T0 + i for i in range(n)], pa.int64()),
            "api_no": pa.array(list(range(n)), pa.int32()),
            "hp": pa.array([i / 4 for i in range(n)], pa.float64()),
            "name": pa.array([f"ship-{i}" if i % 5 else None for i in range(n)], pa.string()),
            "flagship": pa.array([i % 2 == 0 for i in range(n)], pa.bool_()),
            # Bytes have no JSON form: they survive only on the Arrow IPC path.
            "blob": pa.array([i.to_bytes(2, "big") for i in range(n)], pa.binary()),
        }
    )
    path = tmp_path / "sortie.parquet"
    pq.write_table(table, path, row_group_size=300)

    result = await fusou_ingest(
        services.target, "cli-pq", "sortie", path, "--quiet", batch_size=500
    )
    assert result.returncode == 0, result.explain()
    summary = json.loads(result.stdout)
    assert summary["rows"] == n
    assert summary["rows_written"] == n
    assert summary["batches"] == 3  # 500 + 500 + 200
    assert await buffer_count(database_url, "cli-pq", "sortie") == n

    for i in (0, 4, 5, n - 1):
        record = await stored_record(database_url, "cli-pq", "sortie", T0 + i)
        assert record == {
            "timestamp": T0 + i,
            "api_no": i,
            "hp": i / 4,
            "name": f"ship-{i}" if i % 5 else None,
            "flagship": i % 2 == 0,
            "blob": i.to_bytes(2, "big"),
        }

    again = await fusou_ingest(services.target, "cli-pq", "sortie", path, "--quiet", batch_size=500)
    assert again.returncode == 0, again.explain()
    assert json.loads(again.stdout)["batches_replayed"] == 3
    assert await buffer_count(database_url) == n


@pytest.mark.parametrize(
    ("bad_line", "line_no"),
    [
        pytest.param(b"[1,2]", 3, id="not-an-object"),
        pytest.param(b'{"timestamp": 1,', 2, id="not-json"),
        pytest.param(b'"just a string"', 4, id="a-string"),
    ],
)
async def test_bad_jsonl_line_names_the_line(
    services: ServicesUnderTest,
    database_url: str,
    tmp_path: Path,
    bad_line: bytes,
    line_no: int,
) -> None:
    lines = [orjson.dumps(json_row(i)) for i in range(5)]
    lines[line_no - 1] = bad_line
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")

    result = await fusou_ingest(services.target, "cli-bad", "battle", path, "--quiet")
    assert_clean_failure(result)
    assert f"{path}:{line_no}:" in result.stderr, result.explain()
    # The bad line came before the first full batch: nothing was sent.
    assert await buffer_count(database_url) == 0


async def test_missing_file(services: ServicesUnderTest, tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    result = await fusou_ingest(services.target, "cli-missing", "battle", path, "--quiet")
    assert_clean_failure(result)
    assert str(path) in result.stderr, result.explain()


async def test_server_down_is_a_readable_error(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port once the socket is closed.
    path = write_jsonl(tmp_path / "rows.jsonl", [json_row(i) for i in range(3)])
    result = await fusou_ingest(f"127.0.0.1:{port}", "cli-down", "battle", path, "--quiet")
    assert result.returncode == 1, result.explain()
    assert_clean_failure(result)
    assert "UNAVAILABLE" in result.stderr, result.explain()
    assert result.stderr.startswith("fusou ingest:") or "fusou ingest:" in result.stderr


async def test_server_rejection_is_a_readable_error(
    services: ServicesUnderTest, database_url: str, tmp_path: Path
) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [json_row(i) for i in range(3)])
    result = await fusou_ingest(services.target, "../x", "battle", path, "--quiet")
    assert result.returncode == 1, result.explain()
    assert_clean_failure(result)
    assert "INVALID_ARGUMENT" in result.stderr, result.explain()
    assert "dataset_id" in result.stderr, result.explain()
    assert await buffer_count(database_url) == 0


async def test_batch_size_must_be_positive(tmp_path: Path) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"timestamp": pa.array([T0, T0 + 1], pa.int64())}), path)
    result = await fusou_ingest("127.0.0.1:1", "cli-bs", "battle", path, "--quiet", batch_size=0)
    assert_clean_failure(result)
    assert "batch-size" in result.stderr, result.explain()
