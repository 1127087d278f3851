"""``fusou up``, ``fusou serve`` and ``fusou migrate`` run as a user runs them: the installed
console script in a subprocess, driven with the grpcurl binary through server reflection."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import asyncpg
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from fusou.db.migrate import available_migrations
from fusou.testing import PostgresForTests, database_url_with_name
from tests.support.browser import artifact, chromium
from tests.support.grpcurl import (
    BIN_DIR,
    BUF,
    FUSOU,
    INGEST_METHOD,
    INGEST_SERVICE,
    agrpcurl,
    arun,
    clean_env,
    grpcurl,
    run,
)
from tests.support.stats import AGE, TableKey, assert_age_between, figures_of_json, without_age

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0
# A time in the rows the dashboard test sends.
T = 1_700_000_000_000

# The embedded PostgreSQL (the `embedded` extra) is what `fusou up` runs without
# FUSOU_DATABASE_URL. scripts/test installs it only without FUSOU_TEST_DATABASE_URL (it has no
# wheel for every Python): without it, `fusou up` is tested with a database URL.
EMBEDDED = importlib.util.find_spec("pgserver") is not None

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def processes_using(path: Path) -> list[Any]:
    """Live processes whose command line mentions ``path`` (the embedded PostgreSQL's
    postmaster is started with ``-D <data dir>/postgres``)."""
    needle = str(path)
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(needle in part for part in cmdline):
            found.append(proc)
    return found


@dataclass
class LineReader:
    """Collects a child's stdout lines on a thread so the test can wait for one with a bound."""

    stream: IO[str]
    lines: list[str] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False

    def start(self) -> None:
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.stream:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str] | None:
        """The first match of ``pattern`` in a line, or None on timeout or end of output."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = regex.search(line)
                    if m is not None:
                        return m
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def text(self) -> str:
        with self._cond:
            return "\n".join(self.lines)


@dataclass
class UpProcess:
    proc: subprocess.Popen[str]
    port: int
    data_dir: Path
    stdout: LineReader
    stderr_path: Path
    flight_port: int = 0
    dashboard_url: str = ""

    @property
    def target(self) -> str:
        return f"localhost:{self.port}"

    @property
    def flight_target(self) -> str:
        return f"localhost:{self.flight_port}"

    def output(self) -> str:
        return (
            f"--- stdout ---\n{self.stdout.text()}\n"
            f"--- stderr ---\n{self.stderr_path.read_text(errors='replace')}"
        )


def _stop_leftovers(data_dir: Path) -> None:
    """Teardown only: stop the embedded PostgreSQL this test started if it outlived `fusou up`
    (for example after a failed test killed it)."""
    for proc in processes_using(data_dir):
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _gone, alive = psutil.wait_procs(processes_using(data_dir), timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


@pytest.fixture(scope="module")
async def fusou_up(
    tmp_path_factory: pytest.TempPathFactory, postgres: PostgresForTests
) -> AsyncIterator[UpProcess]:
    database_url = None if EMBEDDED else await postgres.create_database()
    try:
        with started_up(tmp_path_factory.mktemp("fusou-up"), database_url) as up:
            yield up
    finally:
        if database_url is not None:
            await postgres.drop_database(database_url)


@contextlib.contextmanager
def started_up(
    data_dir: Path, database_url: str | None = None, command: Sequence[str] = (FUSOU, "up")
) -> Iterator[UpProcess]:
    """`fusou up` on a free port with its own data directory, stopped (and its embedded
    PostgreSQL with it) on exit; with the database at ``database_url`` when one is given."""
    port = free_port()
    env = clean_env(FUSOU_DATA_DIR=str(data_dir), FUSOU_GRPC_PORT=str(port))
    assert "FUSOU_DATABASE_URL" not in env and "FUSOU_OBJECT_STORE_URL" not in env
    if database_url is not None:
        env["FUSOU_DATABASE_URL"] = database_url
    stderr_path = data_dir.parent / f"{data_dir.name}-stderr.log"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            list(command),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert proc.stdout is not None
    reader = LineReader(proc.stdout)
    reader.start()
    up = UpProcess(proc, port, data_dir, reader, stderr_path)
    try:
        started = reader.wait_for(r"^FUSOU is up on localhost:(\d+)$", START_TIMEOUT_S)
        assert started is not None, f"`fusou up` did not come up:\n{up.output()}"
        assert int(started.group(1)) == port
        # The announcement is one print; wait for its last line before tests read it.
        assert reader.wait_for(r"Ctrl-C stops it", 10) is not None, up.output()
        flight = reader.wait_for(r"^arrow flight: localhost:(\d+) ", 1)
        assert flight is not None, up.output()
        up.flight_port = int(flight.group(1))
        dashboard = reader.wait_for(r"^dashboard: +(http://\S+)", 1)
        assert dashboard is not None, up.output()
        up.dashboard_url = dashboard.group(1)
        yield up
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        _stop_leftovers(data_dir)


def test_up_announces_target_and_grpcurl_example(fusou_up: UpProcess) -> None:
    lines = fusou_up.stdout.lines
    assert any(line.strip().startswith("grpcurl ") and INGEST_METHOD in line for line in lines), (
        fusou_up.output()
    )
    assert any(f"grpcurl -plaintext {fusou_up.target} list" in line for line in lines)
    # Embedded defaults: a private PostgreSQL and a local directory, both under the data dir.
    text = fusou_up.stdout.text()
    assert f"file://{fusou_up.data_dir / 'objects'}" in text
    assert (fusou_up.data_dir / "objects").is_dir()
    if EMBEDDED:
        assert str(fusou_up.data_dir / "postgres") in text
        assert processes_using(fusou_up.data_dir / "postgres"), "no embedded PostgreSQL running"
    else:
        assert "database:     FUSOU_DATABASE_URL" in text, fusou_up.output()
        assert not (fusou_up.data_dir / "postgres").exists()


def test_grpcurl_list(fusou_up: UpProcess) -> None:
    result = grpcurl(fusou_up.target, "list")
    assert result.returncode == 0, result.explain()
    services = set(result.stdout.split())
    assert {
        INGEST_SERVICE,
        "grpc.health.v1.Health",
    } <= services, result.explain()
    assert {
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    } <= services, result.explain()


@pytest.mark.parametrize("protocol", ["grpc-v1", "grpc-v1alpha"])
def test_reflection_answers_both_protocols(fusou_up: UpProcess, protocol: str) -> None:
    """A client of each reflection protocol alone (buf curl's --reflect-protocol; the grpcurl
    on PyPI speaks v1alpha only) lists the services and calls one by its reflected schema."""
    base = [BUF, "curl", "--protocol", "grpc", "--reflect-protocol", protocol]
    url = f"http://{fusou_up.target}"
    env = clean_env()
    listed = run([*base, "--list-services", url], env=env)
    assert listed.returncode == 0, listed.explain()
    assert INGEST_SERVICE in listed.stdout.split(), listed.explain()
    checked = run(
        [*base, "-d", '{"service":"readiness"}', f"{url}/grpc.health.v1.Health/Check"], env=env
    )
    assert checked.returncode == 0, checked.explain()
    assert checked.json() == {"status": "SERVING"}


def test_grpcurl_describe(fusou_up: UpProcess) -> None:
    result = grpcurl(fusou_up.target, "describe", INGEST_SERVICE)
    assert result.returncode == 0, result.explain()
    assert re.search(
        r"rpc Ingest \( \.fusou\.ingest\.v1\.IngestRequest \) returns "
        r"\( \.fusou\.ingest\.v1\.IngestResponse \)",
        result.stdout,
    ), result.explain()


def test_grpcurl_health(fusou_up: UpProcess) -> None:
    result = grpcurl(fusou_up.target, "grpc.health.v1.Health/Check")
    assert result.returncode == 0, result.explain()
    assert result.json() == {"status": "SERVING"}


def test_grpcurl_ingest(fusou_up: UpProcess) -> None:
    body = {
        "dataset_id": "cli-up",
        "table": "battle",
        "request_id": "cli-up-1",
        "rows": [
            {"timestamp": 1_700_000_000_000, "api_no": 1, "hp": 42},
            {"timestamp": 1_700_000_000_001, "api_no": 2, "hp": 17},
        ],
    }
    result = grpcurl(fusou_up.target, INGEST_METHOD, data=body)
    assert result.returncode == 0, result.explain()
    answer = result.json()
    assert answer["rows_written"] == "2"  # int64 is a string in proto3 JSON
    assert answer["schema_version"] == 1
    assert int(answer["last_seq"]) - int(answer["first_seq"]) == 1

    # The same request_id again: the first answer, marked as a replay.
    again = grpcurl(fusou_up.target, INGEST_METHOD, data=body)
    assert again.returncode == 0, again.explain()
    replay = again.json()
    assert replay["rows_written"] == "2"
    assert replay["first_seq"] == answer["first_seq"]
    assert replay.get("replayed") is True


def test_the_compaction_example_works(fusou_up: UpProcess, tmp_path: Path) -> None:
    """The README's upload-then-compact lines, against `fusou up` (all four services)."""
    listed = grpcurl(fusou_up.target, "list")
    assert "fusou.compactor.v1.CompactorService" in listed.stdout.split(), listed.explain()
    battles = tmp_path / "battles.parquet"
    pq.write_table(pa.table({"timestamp": [1_700_000_000_000 + i for i in range(5)]}), battles)
    env = clean_env(FUSOU_TARGET=fusou_up.target, FUSOU_FLIGHT_TARGET=fusou_up.flight_target)
    sent = subprocess.run(
        [FUSOU, "upload", "readme", f"battle={battles}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert sent.returncode == 0, sent.stderr
    result = grpcurl(
        fusou_up.target,
        "fusou.compactor.v1.CompactorService/Compact",
        data={"dataset_id": "readme"},
    )
    assert result.returncode == 0, result.explain()
    (dataset,) = result.json()["datasets"]
    assert dataset["status"] == "COMPACT_STATUS_COMPACTED", dataset
    # Beside a running `fusou up`, with nothing configured, `fusou lake` finds its database and
    # store, and the uploaded rows are published.
    lake = subprocess.run(
        [FUSOU, "lake", "--json", "--dataset", "readme"],
        capture_output=True,
        text=True,
        env=clean_env(FUSOU_DATA_DIR=str(fusou_up.data_dir)),
        timeout=60,
        check=False,
    )
    assert lake.returncode == 0, lake.stderr
    (table,) = json.loads(lake.stdout)["tables"]
    assert table["identifier"] == "readme.battle" and table["rows"] == 5


def _fusou(up: UpProcess, *args: str) -> Any:
    result = run(
        [FUSOU, *args],
        env=clean_env(FUSOU_TARGET=up.target, FUSOU_FLIGHT_TARGET=up.flight_target),
        timeout=60,
    )
    assert result.returncode == 0, result.explain()
    return result.json() if result.stdout.strip().startswith("{") else result.stdout


def _shown_tables(driver: Any) -> dict[TableKey, dict[str, str]]:
    """The cells of the dashboard's table of tables: text as shown, and exact data-value."""
    shown = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "#tables tbody tr"):
        key = (row.get_attribute("data-dataset"), row.get_attribute("data-table"))
        shown[key] = {
            cell.get_attribute("data-field"): cell.text
            for cell in row.find_elements(By.CSS_SELECTOR, "td[data-field]")
        }
        shown[key][AGE] = row.find_element(
            By.CSS_SELECTOR, f'td[data-field="{AGE}"]'
        ).get_attribute("data-value")
    return shown


def test_the_dashboard_in_chromium_shows_what_get_stats_answers(
    fusou_up: UpProcess, tmp_path: Path
) -> None:
    """Ingest, archive, compact, ingest again (hot rows), then open the dashboard in headless
    Chromium: every figure of every table is GetStats's, and the charts hold them too."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"timestamp": T + i, "hp": i}) + "\n" for i in range(300)))
    more = tmp_path / "more.jsonl"
    more.write_text("".join(json.dumps({"timestamp": T + i, "hp": -i}) + "\n" for i in range(40)))
    _fusou(fusou_up, "ingest", "--quiet", "dash", "battle", str(rows))
    _fusou(fusou_up, "archive", "--dataset", "dash", "--min-age-seconds", "0")
    _fusou(fusou_up, "compact", "--dataset", "dash")
    _fusou(fusou_up, "ingest", "--quiet", "dash", "battle", str(more))

    with chromium() as driver:
        before = figures_of_json(_fusou(fusou_up, "stats"))
        driver.get(f"{fusou_up.dashboard_url}?refresh=0")
        WebDriverWait(driver, 60).until(
            lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-plotted")
        )
        after = figures_of_json(_fusou(fusou_up, "stats"))
        driver.save_screenshot(str(artifact("dashboard.png")))
        shown = _shown_tables(driver)
        charts = driver.execute_script(
            "return Object.fromEntries(['chart-rows', 'chart-bytes'].map(id => "
            "[id, document.getElementById(id).data.map(t => [t.name, t.x, t.y])]))"
        )
        errors = [
            e
            for e in driver.get_log("browser")  # type: ignore[no-untyped-call]
            if e["level"] == "SEVERE"
        ]

    assert errors == []
    assert before["dash", "battle"]["optimized_rows"] == 300
    assert before["dash", "battle"]["hot_rows"] == 40
    assert without_age(before) == without_age(after)
    assert set(shown) == set(before)
    for key, cells in shown.items():
        for name, number in without_age(before)[key].items():
            if name == "compression_ratio":
                assert cells[name] == f"{number:,.2f}", (key, name)
            else:
                assert cells[name] == f"{int(number):,}", (key, name)
    assert_age_between({k: {AGE: float(v[AGE])} for k, v in shown.items()}, before, after)
    # The charts: per table, one trace per tier, the same figures.
    for chart, unit in (("chart-rows", "rows"), ("chart-bytes", "bytes")):
        for tier, labels, values in charts[chart]:
            for label, value in zip(labels, values, strict=True):
                dataset, table = label.split("/", 1)
                assert value == before[dataset, table][f"{tier}_{unit}"], (chart, tier, label)


def test_printed_grpcurl_example_works(fusou_up: UpProcess) -> None:
    examples = [
        line.strip()
        for line in fusou_up.stdout.lines
        if line.strip().startswith("grpcurl ") and INGEST_METHOD in line
    ]
    assert len(examples) == 1, fusou_up.output()
    # Exactly what a user would paste into a shell (the env puts our grpcurl first on PATH).
    result = run(shlex.split(examples[0]), env=clean_env())
    assert result.returncode == 0, result.explain()
    answer = result.json()
    assert int(answer["rows_written"]) >= 1
    assert answer["schema_version"] == 1

    listed = [
        line.strip()
        for line in fusou_up.stdout.lines
        if line.strip().startswith("grpcurl ") and line.strip().endswith(" list")
    ]
    assert listed, fusou_up.output()
    result = run(shlex.split(listed[0]), env=clean_env())
    assert result.returncode == 0, result.explain()
    assert INGEST_SERVICE in result.stdout.split()


def test_grpcurl_bad_request_names_field(fusou_up: UpProcess) -> None:
    body = {"dataset_id": "../x", "table": "battle", "rows": [{"timestamp": 1}]}
    result = grpcurl(fusou_up.target, INGEST_METHOD, data=body)
    assert result.returncode != 0, result.explain()
    output = result.stdout + result.stderr
    assert "InvalidArgument" in output, result.explain()
    assert "dataset_id" in output, result.explain()
    # The BadRequest details name the field, not just the message.
    assert '"field":"dataset_id"' in output.replace(" ", ""), result.explain()


ROOT = Path(__file__).resolve().parents[2]


def quick_start_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```sh\n(.*?)^```$", section, flags=re.MULTILINE | re.DOTALL)


async def test_the_readme_quick_start_runs_as_written(tmp_path: Path, database_url: str) -> None:
    """Each shell block of the README's quick start, in order, in a directory with the
    project's .venv, as a new user pastes them after a fresh `fusou up` (only the port
    differs)."""
    with started_up(tmp_path / "data", None if EMBEDDED else database_url) as fusou_up:
        _run_quick_start(fusou_up, tmp_path / "work")


def _run_quick_start(fusou_up: UpProcess, tmp_path: Path) -> None:
    tmp_path.mkdir()
    blocks = quick_start_blocks()
    assert len(blocks) >= 7
    text = "\n".join(blocks)
    for method in (
        "fusou.ingest.v1.IngestService/Ingest",
        "fusou.ingest.v1.IngestService/DeclareTable",
        "fusou.ingest.v1.IngestService/UploadRaw",
        "fusou.reader.v1.ReaderService/ReadRange",
        "fusou.reader.v1.ReaderService/GetStats",
        "fusou.archiver.v1.ArchiverService/Archive",
        "fusou.compactor.v1.CompactorService/Compact",
    ):
        assert f"localhost:50051 {method}" in text, method
    # The virtualenv running the tests: the project's .venv when run by ./scripts/test.
    (tmp_path / ".venv").symlink_to(BIN_DIR.parent)
    env = clean_env(FUSOU_TARGET=fusou_up.target, FUSOU_FLIGHT_TARGET=fusou_up.flight_target)
    outputs = []
    for block in blocks:
        script = block.replace("localhost:50051", fusou_up.target)
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{script}\n--- stdout ---\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    out = "\n".join(outputs)
    assert '"status": "SERVING"' in outputs[0]
    assert '"hp": 42' in outputs[2] and '"rows_returned": "2"' in outputs[2]
    assert '"total_rows": "2"' in outputs[3] and '"cold_rows": "2"' in outputs[3], outputs[3]
    assert '"object_key": "raw/demo2/' in outputs[4]
    assert "COMPACT_STATUS_COMPACTED" in outputs[5]
    last = outputs[6].splitlines()[-3:]
    assert [json.loads(line)["hp"] for line in last] == [42, 17, 5], out


def test_sigterm_stops_server_and_embedded_postgres(fusou_up: UpProcess) -> None:
    """Runs last among the tests using ``fusou_up``: it stops the shared process."""
    pg_dir = fusou_up.data_dir / "postgres"
    postmasters = processes_using(pg_dir)
    assert postmasters or not EMBEDDED, "no embedded PostgreSQL running before shutdown"
    watched = list(postmasters)
    for pm in postmasters:
        with contextlib.suppress(psutil.Error):
            watched.extend(pm.children(recursive=True))

    fusou_up.proc.send_signal(signal.SIGTERM)
    try:
        code = fusou_up.proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`fusou up` did not exit within {STOP_TIMEOUT_S}s of SIGTERM")
    assert code == 0, f"exit code {code}\n{fusou_up.output()}"
    stderr = fusou_up.stderr_path.read_text(errors="replace")
    assert "Traceback" not in stderr, fusou_up.output()

    # The embedded PostgreSQL was stopped by `fusou up` itself, not left behind.
    _gone, alive = psutil.wait_procs(watched, timeout=10)
    assert not alive, f"PostgreSQL processes left running: {alive}"
    assert not processes_using(fusou_up.data_dir), processes_using(fusou_up.data_dir)
    assert not (pg_dir / "postmaster.pid").exists()
    # And the port is free again.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", fusou_up.port))


def _spawned_by(up: UpProcess) -> list[psutil.Process]:
    """Every process `fusou up` has running: its children (CPU workers, multiprocessing's
    resource tracker, the embedded PostgreSQL's watchdog) and the embedded PostgreSQL, which
    pg_ctl starts detached, with its own children."""
    found = psutil.Process(up.proc.pid).children(recursive=True)
    for postmaster in processes_using(up.data_dir / "postgres"):
        found.append(postmaster)
        with contextlib.suppress(psutil.Error):
            found.extend(postmaster.children(recursive=True))
    return list({p.pid: p for p in found}.values())


def _command_lines(procs: list[psutil.Process]) -> list[str]:
    lines = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            lines.append(" ".join(proc.cmdline()))
    return lines


async def test_sigkill_of_up_leaves_nothing_running(tmp_path: Path, database_url: str) -> None:
    """`fusou up` killed outright (SIGKILL, the OOM killer) takes everything it started with it:
    its CPU workers, the resource tracker and, when it runs one, the embedded PostgreSQL and
    its watchdog."""
    data_dir = tmp_path / "data"
    with started_up(data_dir, None if EMBEDDED else database_url) as up:
        spawned = _spawned_by(up)
        lines = _command_lines(spawned)
        assert any("spawn_main" in line for line in lines), lines  # a CPU worker
        assert any("resource_tracker" in line for line in lines), lines
        if EMBEDDED:
            assert any("fusou.db.watchdog" in line for line in lines), lines
            assert processes_using(data_dir / "postgres"), lines
        up.proc.kill()
        up.proc.wait(timeout=10)
        # A liveness wait with a generous bound, not a timing claim.
        _gone, alive = psutil.wait_procs(spawned, timeout=60)
        assert not alive, f"left running after SIGKILL: {_command_lines(alive)}"


@pytest.mark.skipif(not EMBEDDED, reason="needs the embedded extra (pgserver)")
def test_an_embedded_postgres_left_by_a_killed_watchdog_is_stopped_by_the_next_up(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    # Killed together with its watchdog, nothing stops the embedded PostgreSQL; the next
    # `fusou up` then attaches to it and, stopping, stops it (no dead user keeps it up).
    with started_up(data_dir) as up:
        watchdogs = [
            p
            for p in psutil.Process(up.proc.pid).children()
            if "fusou.db.watchdog" in " ".join(p.cmdline())
        ]
        assert len(watchdogs) == 1
        for proc in (up.proc, watchdogs[0]):
            proc.kill()
        up.proc.wait(timeout=10)
        assert processes_using(data_dir / "postgres")
    with started_up(data_dir) as up:
        spawned = _spawned_by(up)
        up.proc.send_signal(signal.SIGTERM)
        assert up.proc.wait(timeout=STOP_TIMEOUT_S) == 0, up.output()
        _gone, alive = psutil.wait_procs(spawned, timeout=60)
        assert not alive, f"left running after SIGTERM: {_command_lines(alive)}"
        assert not processes_using(data_dir), processes_using(data_dir)


# -- fusou serve / fusou migrate -----------------------------------------------------------------


async def test_serve_ingest(database_url: str, tmp_path: Path) -> None:
    objects = tmp_path / "objects"
    objects.mkdir()
    env = clean_env(
        FUSOU_DATABASE_URL=database_url,
        FUSOU_OBJECT_STORE_URL=f"file://{objects}",
        FUSOU_GRPC_PORT="0",
        FUSOU_SHUTDOWN_GRACE_S="2",
    )
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("w") as stderr:
        proc = await asyncio.create_subprocess_exec(
            FUSOU,
            "serve",
            "ingest",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert proc.stdout is not None
    try:
        port = await _listening_port(proc.stdout, stderr_path)
        assert port > 0
        target = f"localhost:{port}"

        listed = await agrpcurl(target, "list")
        assert listed.returncode == 0, listed.explain()
        assert INGEST_SERVICE in listed.stdout.split()

        body = {
            "dataset_id": "cli-serve",
            "table": "sortie",
            "rows": [{"timestamp": 1, "area": "1-1"}, {"timestamp": 2, "area": "1-2"}],
        }
        result = await agrpcurl(target, INGEST_METHOD, data=body)
        assert result.returncode == 0, result.explain()
        assert result.json()["rows_written"] == "2"
        assert result.json()["schema_version"] == 1

        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM fusou_buffer") == 2
        finally:
            await conn.close()

        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
        log = _read(stderr_path)
        assert code == 0, f"exit code {code}\n{log}"
        assert "Traceback" not in log, log
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _listening_port(stdout: asyncio.StreamReader, stderr_path: Path) -> int:
    """The port of the first ``listening on port N`` line, waiting at most 60 s for it."""
    seen: list[str] = []

    async def scan() -> int:
        while line := (await stdout.readline()).decode():
            seen.append(line)
            m = re.search(r"listening on port (\d+)", line)
            if m is not None:
                return int(m.group(1))
        raise AssertionError("the process ended without a 'listening on port' line")

    try:
        return await asyncio.wait_for(scan(), 60)
    except (AssertionError, TimeoutError):
        pytest.fail(
            "no 'listening on port' line\n--- stdout ---\n"
            + "".join(seen)
            + "\n--- stderr ---\n"
            + _read(stderr_path)
        )


def _read(path: Path) -> str:
    return path.read_text(errors="replace")


async def test_serve_port_in_use_is_a_readable_error(database_url: str, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as held:
        held.bind(("0.0.0.0", 0))
        held.listen()
        port = held.getsockname()[1]
        env = clean_env(
            FUSOU_DATABASE_URL=database_url,
            FUSOU_OBJECT_STORE_URL=f"file://{tmp_path}",
            FUSOU_GRPC_PORT=str(port),
        )
        result = await arun([FUSOU, "serve", "ingest"], env=env)
    assert result.returncode != 0, result.explain()
    assert "Traceback" not in result.stderr, result.explain()
    assert str(port) in result.stderr, result.explain()


async def test_serve_without_database_url_exits_2(tmp_path: Path) -> None:
    env = clean_env(FUSOU_OBJECT_STORE_URL=f"file://{tmp_path}", FUSOU_GRPC_PORT="0")
    result = await arun([FUSOU, "serve", "ingest"], env=env)
    assert result.returncode == 2, result.explain()
    assert "FUSOU_DATABASE_URL" in result.stderr, result.explain()
    assert "Traceback" not in result.stderr, result.explain()


async def test_serve_unknown_service(database_url: str, tmp_path: Path) -> None:
    env = clean_env(
        FUSOU_DATABASE_URL=database_url,
        FUSOU_OBJECT_STORE_URL=f"file://{tmp_path}",
        FUSOU_GRPC_PORT="0",
    )
    result = await arun([FUSOU, "serve", "nosuch"], env=env)
    assert result.returncode != 0, result.explain()
    assert "nosuch" in result.stderr, result.explain()
    assert "Traceback" not in result.stderr, result.explain()


async def test_migrate_fresh_database_then_nothing(postgres: PostgresForTests) -> None:
    name = f"fusou_cli_migrate_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = database_url_with_name(postgres.admin_url, name)
    try:
        env = clean_env(FUSOU_DATABASE_URL=url)
        first = await arun([FUSOU, "migrate"], env=env)
        assert first.returncode == 0, first.explain()
        expected = [m.version for m in available_migrations()]
        assert expected[0] == 1
        assert json.loads(first.stdout.strip().splitlines()[-1]) == {"applied": expected}

        second = await arun([FUSOU, "migrate"], env=env)
        assert second.returncode == 0, second.explain()
        assert json.loads(second.stdout.strip().splitlines()[-1]) == {"applied": []}

        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT to_regclass('fusou_buffer') IS NOT NULL")
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(postgres.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def test_migrate_without_database_url_exits_2() -> None:
    result = await arun([FUSOU, "migrate"], env=clean_env())
    assert result.returncode == 2, result.explain()
    assert "FUSOU_DATABASE_URL" in result.stderr, result.explain()


# -- a database that cannot be used, an embedded one that is not installed ---------------------


@pytest.mark.parametrize("command", [["up"], ["serve", "ingest"], ["migrate"]])
@pytest.mark.parametrize(
    ("url", "cause"),
    [
        # Nothing listens on the port.
        ("postgresql://postgres@127.0.0.1:{port}/postgres", "Connect call failed"),
        # A URL the driver cannot use.
        ("postgresql://postgres@127.0.0.1:99999/postgres", "port must be 0-65535"),
    ],
)
async def test_an_unusable_database_is_one_line_naming_the_variable(
    command: list[str], url: str, cause: str, tmp_path: Path
) -> None:
    env = clean_env(
        FUSOU_DATABASE_URL=url.format(port=free_port()),
        FUSOU_OBJECT_STORE_URL=f"file://{tmp_path}",
        FUSOU_DATA_DIR=str(tmp_path / "data"),
        FUSOU_GRPC_PORT="0",
    )
    result = await arun([FUSOU, *command], env=env)
    assert result.returncode == 1, result.explain()
    (line,) = result.stderr.splitlines()
    assert line.startswith("fusou: FUSOU_DATABASE_URL: cannot connect to PostgreSQL: "), line
    assert cause in line, line
    assert result.stdout == ""


# Runs `fusou up` where importing pgserver fails the way it does when the embedded extra is not
# installed (or is asked for at all, with MODE=forbid).
_WITHOUT_PGSERVER = """
import sys

class _NoPgserver:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "pgserver":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, _NoPgserver())
from fusou.cli.main import main

code = main(["up"])
assert "pgserver" not in sys.modules
sys.exit(code)
"""


async def test_up_without_a_database_url_or_the_embedded_extra_says_what_to_do(
    tmp_path: Path,
) -> None:
    env = clean_env(FUSOU_DATA_DIR=str(tmp_path / "data"), FUSOU_GRPC_PORT="0")
    result = await arun([sys.executable, "-c", _WITHOUT_PGSERVER], env=env)
    assert result.returncode == 2, result.explain()
    (line,) = result.stderr.splitlines()
    assert line.startswith("fusou: FUSOU_DATABASE_URL is not set"), line
    assert "pip install 'fusou[embedded]'" in line, line
    assert not (tmp_path / "data" / "postgres").exists()


async def test_up_with_a_database_url_never_imports_pgserver(
    database_url: str, tmp_path: Path
) -> None:
    """The embedded extra is only needed without a URL: `fusou up` runs, serves, and stops
    where importing pgserver would fail."""
    command = [sys.executable, "-c", _WITHOUT_PGSERVER]
    with started_up(tmp_path / "data", database_url, command) as up:
        assert "database:     FUSOU_DATABASE_URL" in up.stdout.text(), up.output()
        listed = grpcurl(up.target, "list")
        assert listed.returncode == 0, listed.explain()
        assert INGEST_SERVICE in listed.stdout.split()
        up.proc.send_signal(signal.SIGTERM)
        code = up.proc.wait(timeout=STOP_TIMEOUT_S)
        assert code == 0, up.output()
        assert "Traceback" not in up.stderr_path.read_text(), up.output()
