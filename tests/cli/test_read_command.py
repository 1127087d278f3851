"""``fusou read``: JSON lines to standard output or a file, Parquet to a file."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from fusou.cli.input_error import InputError
from fusou.cli.read_client import parse_time
from fusou.config import Settings
from fusou.testing import ServicesUnderTest, running_services
from tests.support.grpcurl import FUSOU, agrpcurl, arun

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def _rows(n: int) -> list[dict[str, Any]]:
    return [
        {"timestamp": T0 + i * 1000, "api_no": i, "nested": {"a": [i, "x"]}, "hp": i / 2}
        for i in range(n)
    ]


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[ServicesUnderTest]:
    tuned = settings.replace(archive_min_age_s=0, archive_block_rows=10)
    async with running_services(tuned, ["ingest", "archiver", "reader"]) as s:
        result = await agrpcurl(
            s.target,
            "fusou.ingest.v1.IngestService/Ingest",
            data={"dataset_id": "u1", "table": "battle", "rows": _rows(50)},
        )
        assert result.returncode == 0, result.explain()
        archived = await agrpcurl(
            s.target,
            "fusou.archiver.v1.ArchiverService/Archive",
            data={"dataset_id": "u1", "max_rows_per_table": 30},
        )
        assert archived.returncode == 0, archived.explain()
        yield s


def test_times_parse_as_rfc3339_or_epoch_ms() -> None:
    assert parse_time("1700000000000") == T0
    assert parse_time("2023-11-14T22:13:20Z") == T0
    assert parse_time("2023-11-14T22:13:20.5+00:00") == T0 + 500
    assert parse_time("2023-11-15T07:13:20+09:00") == T0
    with pytest.raises(InputError):
        parse_time("yesterday")


@pytest.mark.integration
async def test_json_lines_to_stdout(system: ServicesUnderTest) -> None:
    result = await arun(
        [
            FUSOU,
            "read",
            "u1",
            "battle",
            "--target",
            system.target,
            "--flight-target",
            system.flight_target,
            "--quiet",
            "--from",
            "2023-11-14T22:13:25Z",
            "--to",
            str(T0 + 40_000),
        ]
    )
    assert result.returncode == 0, result.explain()
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == _rows(50)[5:40]  # half of it cold, half hot; ints stay ints


@pytest.mark.integration
async def test_columns_limit_and_parquet_file(system: ServicesUnderTest, tmp_path: Path) -> None:
    out = tmp_path / "part.parquet"
    result = await arun(
        [
            FUSOU,
            "read",
            "u1",
            "battle",
            "--target",
            system.target,
            "--flight-target",
            system.flight_target,
            "--from",
            str(T0),
            "--to",
            str(T0 + 10**6),
            "--columns",
            "api_no",
            "--limit",
            "20",
            "--format",
            "parquet",
            "-o",
            str(out),
        ]
    )
    assert result.returncode == 0, result.explain()
    table = pq.read_table(out)
    assert table.column_names == ["timestamp", "api_no"]
    assert table.column("api_no").to_pylist() == list(range(20))
    stats = json.loads(result.stderr.strip().splitlines()[-1])["stats"]
    assert int(stats["rows_returned"]) == 20


@pytest.mark.integration
async def test_failures_are_readable(system: ServicesUnderTest, tmp_path: Path) -> None:
    def read(
        table: str, *args: str, target: str = system.target, flight: str = system.flight_target
    ) -> list[str]:
        return [FUSOU, "read", "u1", table, "--target", target, "--flight-target", flight, *args]

    bad_time = await arun(read("battle", "--from", "soon", "--to", "1"))
    assert bad_time.returncode == 2 and "soon" in bad_time.stderr
    no_file = await arun(read("battle", "--from", "0", "--to", "1", "--format", "parquet"))
    assert no_file.returncode == 2 and "-o" in no_file.stderr
    backwards = await arun(read("battle", "--from", "10", "--to", "1", "--quiet"))
    assert backwards.returncode == 1 and "INVALID_ARGUMENT" in backwards.stderr
    unknown = await arun(read("nope", "--from", "0", "--to", "1", "--quiet"))
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = await arun(
        read(
            "battle",
            "--from",
            "0",
            "--to",
            "1",
            "--quiet",
            "--timeout",
            "5",
            flight=f"127.0.0.1:{port}",
        )
    )
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
    assert f"127.0.0.1:{port} did not answer" in down.stderr and "--grpc" in down.stderr
    grpc_down = await arun(
        read(
            "battle",
            *("--from", "0", "--to", "1", "--quiet", "--timeout", "5", "--grpc"),
            target=f"127.0.0.1:{port}",
        )
    )
    assert grpc_down.returncode == 1 and "UNAVAILABLE" in grpc_down.stderr
    for r in (bad_time, no_file, backwards, unknown, down, grpc_down):
        assert "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.integration
async def test_flight_and_grpc_write_the_same_rows(
    system: ServicesUnderTest, tmp_path: Path
) -> None:
    outputs = {}
    for via in ("flight", "grpc"):
        out = tmp_path / f"{via}.parquet"
        command = [
            *(FUSOU, "read", "u1", "battle", "--target", system.target),
            *("--flight-target", system.flight_target, "--from", str(T0), "--to", str(T0 + 50_000)),
            *("--format", "parquet", "-o", str(out), "--quiet"),
        ]
        result = await arun([*command, "--grpc"] if via == "grpc" else command)
        assert result.returncode == 0, result.explain()
        outputs[via] = pq.read_table(out)
        # One row group, though Flight sends the rows a block at a time.
        assert pq.ParquetFile(out).num_row_groups == 1
    assert outputs["flight"].num_rows == 50
    assert outputs["flight"].equals(outputs["grpc"])


@pytest.mark.integration
async def test_where_keeps_the_rows_meeting_every_condition(system: ServicesUnderTest) -> None:
    base = [
        *(FUSOU, "read", "u1", "battle", "--target", system.target),
        *("--flight-target", system.flight_target, "--from", str(T0)),
    ]
    result = await arun(
        [
            *base,
            "--to",
            str(T0 + 50_000),
            "--where",
            "hp >= 10",
            "--where",
            "api_no in (4, 25, 31, 40)",
        ]
    )
    assert result.returncode == 0, result.explain()
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines == [r for r in _rows(50) if r["api_no"] in (25, 31, 40)]  # cold and hot
    stats = json.loads(result.stderr.strip().splitlines()[-1])["stats"]
    # Rows of blocks left out by their statistics are not counted as filtered.
    assert int(stats.get("blocks_pruned", 0)) > 0
    assert int(stats["rows_filtered"]) < 47
    bad = await arun([*base, "--to", str(T0 + 50_000), "--where", "hp ~ 3"])
    assert bad.returncode == 2 and bad.stdout == ""
    assert "--where 'hp ~ 3'" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    refused = await arun([*base, "--to", str(T0 + 50_000), "--quiet", "--where", "nope = 1"])
    assert refused.returncode == 1 and "unknown column 'nope'" in refused.stderr
