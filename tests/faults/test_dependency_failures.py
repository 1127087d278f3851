"""Dependency failures reach clients as UNAVAILABLE (or DEADLINE_EXCEEDED), with the cause in
the message, and lose nothing: the client retries and every acknowledged row is there exactly
once.

- PostgreSQL: the service's sessions are ended with ``pg_terminate_backend`` from an admin
  connection (what an operator, a failover or a restart does) in the middle of Archive and
  Compact (at each step of a run, through their checkpoints) and while Ingest and ReadRange
  calls run (a loop of terminations beside them). Calls afterwards succeed: the pools replace
  the dead connections (see ``Recovery`` for the one failure a pool may still answer).
- The local object store: its root replaced by something that cannot hold objects, which
  running as root cannot get around (a file, a link to itself).
- S3: the server stopped (connections refused), then started again.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import grpc
import pytest

from fusou.api.archiver.v1 import archiver_pb2, archiver_pb2_grpc
from fusou.api.compactor.v1 import compactor_pb2, compactor_pb2_grpc
from fusou.api.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from fusou.api.reader.v1 import reader_pb2_grpc
from fusou.api.structs import structs
from fusou.archive.archiver import Archiver
from fusou.clock import ManualClock
from fusou.compact.compactor import Compactor
from fusou.config import Settings
from fusou.jobs import Checkpoint
from fusou.runtime import open_runtime
from fusou.server.app import FusouServer
from fusou.services.archiver.main import SERVICE as ARCHIVER
from fusou.services.archiver.servicer import ArchiverServicer
from fusou.services.compactor.main import SERVICE as COMPACTOR
from fusou.services.compactor.servicer import CompactorServicer
from fusou.services.ingest.main import SERVICE as INGEST
from fusou.services.reader.main import SERVICE as READER
from fusou.services.spec import Serving
from fusou.testing import PostgresForTests, ServicesUnderTest
from tests.archive.oracle import buffer_seqs, exactly_once
from tests.compact.oracle import (
    COMPACTED,
    NOTHING_TO_DO,
    active_kinds,
    compact_until_done,
    every_seq,
)
from tests.read.conftest import SMALL_BLOCKS, Stubs, open_stubs
from tests.read.oracle import Oracle, archive, check_arrow, ingest, read, read_request
from tests.read.test_equivalence import battle, minute
from tests.support.s3server import S3Server, running_s3_server

pytestmark = pytest.mark.integration

T = TypeVar("T")

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
DS, TABLE = "u1", "battle"
# Every row of the tests lies in [START, END).
START, END = minute(-60), minute(1_000_000)
ARCHIVE_POINTS = ["upload", "uploaded", "commit", "committed"]
COMPACT_POINTS = ["read", "upload", "uploaded", "commit", "committed"]
# Most rounds of terminations while Ingest or ReadRange calls run; they stop earlier, once
# a few calls have failed.
MOST_ROUNDS = 200
FAILED_CALLS = 3


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


@pytest.fixture
def s3_settings(settings: Settings, s3: S3Server) -> Settings:
    return settings.replace(
        object_store_url=f"s3://{s3.new_bucket()}/fusou",
        s3_endpoint_url=s3.endpoint_url,
        s3_region=s3.region,
    )


class Sessions:
    """The service's PostgreSQL sessions, ended from an admin connection the way an operator's
    ``pg_terminate_backend`` (or a failover) ends them."""

    def __init__(self, admin: asyncpg.Connection, database: str) -> None:
        self._admin = admin
        self._database = database
        self.rounds = 0

    async def terminate(self) -> int:
        """End every session of the test database; return how many there were."""
        pids = [
            r["pid"]
            for r in await self._admin.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                self._database,
            )
        ]
        await self._admin.execute(
            "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", pids
        )
        # pg_terminate_backend only signals the backends: wait until they are gone, so that
        # whatever the service does next meets ended sessions, not ones about to end.
        for _ in range(1000):
            left = await self._admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", pids
            )
            if not left:
                self.rounds += 1
                return len(pids)
            await asyncio.sleep(0.01)
        raise AssertionError(f"sessions {pids} outlived pg_terminate_backend")


@pytest.fixture
async def sessions(postgres: PostgresForTests, database_url: str) -> AsyncIterator[Sessions]:
    admin = await asyncpg.connect(postgres.admin_url)
    try:
        yield Sessions(admin, database_url.rsplit("/", 1)[1])
    finally:
        await admin.close()


class Faults:
    """The checkpoint of the archiver and compactor under test: a no-op until a test arms it
    with ``terminate_at``."""

    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions
        self._point: str | None = None
        self.fired: list[str] = []

    def terminate_at(self, point: str | None) -> None:
        """End the service's sessions the next time a run reaches ``point`` (None: never)."""
        self._point = point

    async def __call__(self, name: str) -> None:
        if name == self._point:
            self._point = None
            assert await self._sessions.terminate() > 0, f"no session to end at {name!r}"
            self.fired.append(name)


@asynccontextmanager
async def faulty_stubs(settings: Settings, checkpoint: Checkpoint) -> AsyncIterator[Stubs]:
    """The four services in this process, the archiver and compactor reporting their steps to
    ``checkpoint``."""
    tuned = settings.replace(grpc_host="127.0.0.1", grpc_port=0, metrics_port=0, **SMALL_BLOCKS)
    clock = ManualClock()
    runtime = await open_runtime(tuned, clock)
    try:
        jobs = (runtime.settings, runtime.pool, runtime.store, runtime.registry)
        archiver = ArchiverServicer(Archiver(*jobs, checkpoint=checkpoint, clock=clock))
        compactor = CompactorServicer(Compactor(*jobs, checkpoint=checkpoint, clock=clock))
        server = FusouServer(
            runtime.settings,
            [
                INGEST.hosted(runtime),
                READER.hosted(runtime),
                # As declared, but over domain objects that report to the checkpoint.
                replace(ARCHIVER, serving=lambda _: Serving(archiver)).hosted(runtime),
                replace(COMPACTOR, serving=lambda _: Serving(compactor)).hosted(runtime),
            ],
        )
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
                assert settings.database.url is not None
                yield Stubs(
                    ServicesUnderTest(runtime, server, clock),
                    settings.database.url,
                    ingest_pb2_grpc.IngestServiceStub(ch),
                    archiver_pb2_grpc.ArchiverServiceStub(ch),
                    reader_pb2_grpc.ReaderServiceStub(ch),
                    compactor_pb2_grpc.CompactorServiceStub(ch),
                )
        finally:
            await server.stop(grace=1.0)
    finally:
        await runtime.close()


class Failures:
    """The failed calls of a test: each must be retryable and say what broke."""

    def __init__(self) -> None:
        self.details: list[str] = []

    async def attempt(self, call: Awaitable[T]) -> T | None:
        """``call``'s answer, or None when it failed with a code a client retries."""
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            assert exc.code() in RETRYABLE, f"{exc.code().name}: {exc.details()}"
            self.details.append(exc.details() or "")
            return None


class Recovery:
    """Calls once the faults stopped: each must succeed, but for at most one retryable failure
    per pool (the service has two). A session the server ended a moment ago may still look
    open to the client (its farewell read, its closed socket not yet), and asyncpg cannot tell;
    the call that meets it fails, and its pool then renews every connection, so no further
    call meets one."""

    def __init__(self) -> None:
        self.spare = 2

    async def call(self, make: Callable[[], Awaitable[T]]) -> T:
        while True:
            try:
                return await make()
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or self.spare == 0:
                    raise
                self.spare -= 1


async def _load(stubs: Stubs, oracle: Oracle, rows: range = range(120)) -> None:
    """Cold files of several blocks (rows in threes of batches), then some hot rows."""
    size = len(rows) // 4
    for k in range(3):
        await ingest(
            stubs.ingest, oracle, DS, TABLE, [battle(i) for i in rows[k * size : (k + 1) * size]]
        )
    await archive(stubs.archiver, stubs.services.clock, DS, TABLE)
    await ingest(stubs.ingest, oracle, DS, TABLE, [battle(i) for i in rows[3 * size :]])


async def _check_everything(stubs: Stubs, oracle: Oracle, recovery: Recovery | None = None) -> None:
    """Every acknowledged row exactly once (buffer plus active files), and a read that says
    the same."""
    seqs = {r.seq for r in oracle.rows}
    assert exactly_once(await every_seq(stubs.url, stubs.services.runtime.store), seqs) == []
    answer = await (recovery or Recovery()).call(
        lambda: read(stubs.reader, read_request(DS, TABLE, START, END))
    )
    check_arrow(answer, oracle, START, END)


def _archive_request() -> archiver_pb2.ArchiveRequest:
    return archiver_pb2.ArchiveRequest(dataset_id=DS, table=TABLE, min_age_seconds=0)


def _compact_request() -> compactor_pb2.CompactRequest:
    # Naming the table, as the archive request does: a call covering a dataset reports a
    # table's failure in its answer (status FAILED) instead of answering with its code.
    return compactor_pb2.CompactRequest(dataset_id=DS, table=TABLE)


# -- PostgreSQL sessions ended in the middle of a run ---------------------------------------------


@pytest.mark.parametrize("point", ARCHIVE_POINTS)
async def test_archive_with_its_sessions_ended_answers_unavailable_and_recovers(
    s3_settings: Settings, sessions: Sessions, point: str
) -> None:
    faults = Faults(sessions)
    async with faulty_stubs(s3_settings, faults) as stubs:
        oracle = Oracle()
        await _load(stubs, oracle)
        await ingest(stubs.ingest, oracle, DS, TABLE, [battle(i) for i in range(120, 200)])
        stubs.services.clock.advance(60)

        failures = Failures()
        faults.terminate_at(point)
        # Per-table failure isolation may answer OK and report the table as failed instead;
        # either way the retry below must finish the move.
        await failures.attempt(stubs.archiver.Archive(_archive_request()))
        assert faults.fired == [point]
        assert all("PostgreSQL" in d for d in failures.details), failures.details

        # The first call afterwards succeeds: the failed run made its pool renew every
        # connection.
        answer = await stubs.archiver.Archive(_archive_request())
        assert [(t.dataset_id, t.table) for t in answer.tables] in ([(DS, TABLE)], [])
        assert await buffer_seqs(stubs.url) == []
        await _check_everything(stubs, oracle)


@pytest.mark.parametrize("point", COMPACT_POINTS)
async def test_compact_with_its_sessions_ended_answers_unavailable_and_recovers(
    s3_settings: Settings, sessions: Sessions, point: str
) -> None:
    faults = Faults(sessions)
    async with faulty_stubs(s3_settings, faults) as stubs:
        oracle = Oracle()
        await _load(stubs, oracle)

        failures = Failures()
        faults.terminate_at(point)
        await failures.attempt(stubs.compactor.Compact(_compact_request()))
        assert faults.fired == [point]
        assert all("PostgreSQL" in d for d in failures.details), failures.details
        await _check_everything(stubs, oracle)

        # The failed run gave its claim back: the next run is not refused as busy. (Ended
        # sessions early in a run may still let it commit on new connections, failing only
        # when it gives its table lock back: then nothing is left to do.)
        results = await compact_until_done(stubs.compactor, DS)
        assert results[-1].status in (COMPACTED, NOTHING_TO_DO)
        assert set(await active_kinds(stubs.url)) == {"optimized"}
        await _check_everything(stubs, oracle)


# -- PostgreSQL sessions ended again and again while calls run ------------------------------------


async def _under_terminations(
    sessions: Sessions,
    failures: Failures,
    client: Callable[[asyncio.Event], Coroutine[Any, Any, None]],
) -> None:
    """Three ``client`` loops, run while the service's sessions are ended round after round,
    until a few calls have failed (or many rounds went by); then the clients are told to stop
    (the event is cleared) and awaited."""
    running = asyncio.Event()
    running.set()
    clients = [asyncio.create_task(client(running)) for _ in range(3)]
    try:
        while len(failures.details) < FAILED_CALLS and sessions.rounds < MOST_ROUNDS:
            await sessions.terminate()
            # Long enough for the pools to reconnect and the calls to get some way.
            await asyncio.sleep(0.02)
    finally:
        running.clear()
        await asyncio.gather(*clients)
    assert failures.details, "no call met an ended session"
    assert all("PostgreSQL" in d for d in failures.details), failures.details


async def test_ingest_while_sessions_end_loses_and_duplicates_nothing(
    settings: Settings, sessions: Sessions
) -> None:
    async with open_stubs(settings, **SMALL_BLOCKS) as stubs:
        oracle = Oracle()
        await ingest(stubs.ingest, oracle, DS, TABLE, [battle(i) for i in range(10)])
        failures = Failures()
        sent: dict[str, list[dict[str, Any]]] = {}
        unanswered: list[str] = []

        workers = iter(range(3))

        async def client(running: asyncio.Event) -> None:
            worker = next(workers)
            batch = 0
            while running.is_set() or batch < 3:
                first = 10 + (worker * 1000 + batch) * 10
                rows = [battle(i) for i in range(first, first + 10)]
                request_id = f"w{worker}-{batch}"
                sent[request_id] = rows
                answer = await failures.attempt(
                    stubs.ingest.Ingest(
                        ingest_pb2.IngestRequest(
                            dataset_id=DS, table=TABLE, request_id=request_id, rows=structs(rows)
                        )
                    )
                )
                if answer is None:
                    unanswered.append(request_id)
                else:
                    _keep(oracle, answer, rows, request_id)
                batch += 1

        await _under_terminations(sessions, failures, client)

        # Retried with the same request ids: applied once whatever happened to the first
        # attempt (committed with its answer lost, or rolled back).
        recovery = Recovery()
        for request_id in unanswered:
            request = ingest_pb2.IngestRequest(
                dataset_id=DS, table=TABLE, request_id=request_id, rows=structs(sent[request_id])
            )
            answer = await recovery.call(functools.partial(stubs.ingest.Ingest, request))
            _keep(oracle, answer, sent[request_id], request_id)
        assert len(oracle.rows) == 10 + 10 * len(sent)
        await _check_everything(stubs, oracle, recovery)


def _keep(
    oracle: Oracle,
    answer: ingest_pb2.IngestResponse,
    rows: list[dict[str, Any]],
    request_id: str,
) -> None:
    if answer.replayed and request_id not in oracle.answers:
        # The first attempt committed but its answer was lost with the session.
        oracle.keep_rows(answer.first_seq, rows)
        oracle.answers[request_id] = answer
    else:
        oracle.keep(answer, rows, request_id=request_id)


async def test_read_range_while_sessions_end_answers_right_or_unavailable(
    s3_settings: Settings, sessions: Sessions
) -> None:
    async with open_stubs(s3_settings, **SMALL_BLOCKS) as stubs:
        oracle = Oracle()
        await _load(stubs, oracle)
        failures = Failures()
        answered = 0

        async def reader(running: asyncio.Event) -> None:
            nonlocal answered
            while running.is_set():
                answer = await failures.attempt(
                    read(stubs.reader, read_request(DS, TABLE, START, END))
                )
                if answer is not None:
                    check_arrow(answer, oracle, START, END)
                    answered += 1

        await _under_terminations(sessions, failures, reader)
        await _check_everything(stubs, oracle)


# -- the object store failing ----------------------------------------------------------------------


async def _unavailable(call: Callable[[], Awaitable[Any]]) -> str:
    """The details of the UNAVAILABLE status a call the store failed answers with."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call()
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE, raised.value.details()
    return raised.value.details() or ""


@pytest.mark.parametrize(
    ("breakage", "cause"),
    [("file", "not a directory"), ("loop", "Too many levels of symbolic links")],
)
async def test_local_store_failure_answers_unavailable_with_the_cause(
    settings: Settings, settings_objects: Path, breakage: str, cause: str
) -> None:
    root = settings_objects
    async with open_stubs(settings, **SMALL_BLOCKS) as stubs:
        oracle = Oracle()
        await _load(stubs, oracle)
        await ingest(stubs.ingest, oracle, DS, TABLE, [battle(i) for i in range(120, 150)])
        stubs.services.clock.advance(60)

        # What root cannot write through: a file, or a link to itself, where the root was.
        kept = root.with_name("objects-kept")
        root.rename(kept)
        if breakage == "file":
            root.write_bytes(b"not a directory")
        else:
            root.symlink_to(root)
        try:
            calls: list[Callable[[], Awaitable[Any]]] = [
                lambda: read(stubs.reader, read_request(DS, TABLE, START, END)),
                lambda: stubs.archiver.Archive(_archive_request()),
                lambda: stubs.compactor.Compact(_compact_request()),
            ]
            for call in calls:
                details = await _unavailable(call)
                assert str(root) in details and cause in details, details
        finally:
            root.unlink()
            kept.rename(root)

        await stubs.archiver.Archive(_archive_request())
        assert await buffer_seqs(stubs.url) == []
        assert (await compact_until_done(stubs.compactor, DS))[0].status == COMPACTED
        await _check_everything(stubs, oracle)


async def test_stopped_s3_answers_unavailable_and_nothing_is_lost(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Refused connections are not retried by botocore then: each call fails at once.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with running_s3_server() as s3:
        s3_settings = settings.replace(
            object_store_url=f"s3://{s3.bucket}/fusou",
            s3_endpoint_url=s3.endpoint_url,
            s3_region=s3.region,
        )
        async with open_stubs(s3_settings, **SMALL_BLOCKS) as stubs:
            oracle = Oracle()
            await _load(stubs, oracle)
            await ingest(stubs.ingest, oracle, DS, TABLE, [battle(i) for i in range(120, 150)])
            stubs.services.clock.advance(60)

            with s3.stopped():
                calls: list[Callable[[], Awaitable[Any]]] = [
                    lambda: read(stubs.reader, read_request(DS, TABLE, START, END)),
                    lambda: stubs.archiver.Archive(_archive_request()),
                    lambda: stubs.compactor.Compact(_compact_request()),
                ]
                for call in calls:
                    details = await _unavailable(call)
                    assert "S3 connection failed" in details, details

            # Back up: connections the client pooled before the stop may fail once more.
            failures = Failures()
            for _ in range(5):
                if await failures.attempt(stubs.archiver.Archive(_archive_request())) is not None:
                    break
            assert await buffer_seqs(stubs.url) == []
            assert (await compact_until_done(stubs.compactor, DS))[0].status == COMPACTED
            for _ in range(5):
                answer = await failures.attempt(
                    read(stubs.reader, read_request(DS, TABLE, START, END))
                )
                if answer is not None:
                    check_arrow(answer, oracle, START, END)
                    break
            await _check_everything(stubs, oracle)
