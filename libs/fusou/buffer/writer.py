"""Group commit: concurrent Ingest requests share transactions.

Requests queue up while a transaction is in flight; the next transaction takes everything that
queued (up to a row bound). Throughput then depends on the database's commit rate, not on how
well clients batch, and each request still gets its answer only after its rows committed.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg

from fusou.buffer.copy_format import COPY_COLUMNS, HEADER, TRAILER, BufferRows, copy_rows
from fusou.catalog.fence import refused_tables
from fusou.cpu import run_cpu
from fusou.storage.replay import Answers, record_answers, stored_answer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteResult:
    rows_written: int
    schema_version: int
    first_seq: int
    last_seq: int
    replayed: bool = False

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "rows_written": self.rows_written,
                "schema_version": self.schema_version,
                "first_seq": self.first_seq,
                "last_seq": self.last_seq,
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes, *, replayed: bool) -> WriteResult:
        data = json.loads(raw)
        return cls(
            data["rows_written"],
            data["schema_version"],
            data["first_seq"],
            data["last_seq"],
            replayed,
        )


@dataclass
class _Pending:
    dataset_id: str
    request_id: str | None
    rows: BufferRows
    future: asyncio.Future[WriteResult]
    # Later requests of the same group with the same request_id: they get this one's answer.
    followers: list[_Pending] = field(default_factory=list)


async def lookup_response(
    conn: asyncpg.Connection, dataset_id: str, request_id: str
) -> WriteResult | None:
    raw = await stored_answer(conn, Answers.INGEST, dataset_id, request_id)
    return None if raw is None else WriteResult.from_json(raw, replayed=True)


class GroupCommitWriter:
    def __init__(self, pool: asyncpg.Pool, *, max_rows: int, concurrency: int) -> None:
        self._pool = pool
        self._max_rows = max_rows
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._closed = False

    def start(self) -> None:
        if self._task is None:
            # Started by the first write, it outlives that call: a fresh context keeps the
            # call's log fields (request id, token) off everything the task logs later.
            self._task = asyncio.create_task(
                self._run(), name="group-commit", context=contextvars.Context()
            )

    async def close(self) -> None:
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def write(self, dataset_id: str, request_id: str | None, rows: BufferRows) -> WriteResult:
        if self._closed:
            raise RuntimeError("the writer is closed")
        self.start()
        future: asyncio.Future[WriteResult] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(dataset_id, request_id, rows, future))
        self._wakeup.set()
        # The caller may be cancelled (client gone); the group still commits and the rows stay,
        # as they would for any request whose answer was lost.
        return await asyncio.shield(future)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await self._slots.acquire()
                group = self._take_group()
                task = asyncio.create_task(self._commit_group(group))
                self._inflight.add(task)
                task.add_done_callback(self._done)
            if self._closed:
                return

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()

    def _take_group(self) -> list[_Pending]:
        """The next requests to commit together. A request repeating a request_id already in
        the group does not write: it follows the first one and gets its answer."""
        group: list[_Pending] = []
        leaders: dict[tuple[str, str], _Pending] = {}
        rows = 0
        while self._queue and (not group or rows + self._queue[0].rows.num_rows <= self._max_rows):
            item = self._queue.popleft()
            if item.request_id:
                key = (item.dataset_id, item.request_id)
                leader = leaders.get(key)
                if leader is not None:
                    leader.followers.append(item)
                    continue
                leaders[key] = item
            group.append(item)
            rows += item.rows.num_rows
        return group

    async def _commit_group(self, group: list[_Pending]) -> None:
        try:
            results = await self._transaction(group)
        except BaseException as exc:
            for item in group:
                for waiter in (item, *item.followers):
                    if not waiter.future.done():
                        waiter.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for item, result in zip(group, results, strict=True):
            if isinstance(result, Exception):
                for waiter in (item, *item.followers):
                    if not waiter.future.done():
                        waiter.future.set_exception(result)
                continue
            if not item.future.done():
                item.future.set_result(result)
            for follower in item.followers:
                if not follower.future.done():
                    follower.future.set_result(dataclasses.replace(result, replayed=True))

    async def _transaction(self, group: list[_Pending]) -> list[WriteResult | Exception]:
        """One transaction for the group: per request, its answer, or why its table refused
        it (the others are written all the same)."""
        async with self._pool.acquire() as conn, conn.transaction():
            refused = await refused_tables(
                conn, [item.dataset_id for item in group], [item.rows.table_id for item in group]
            )
            writing = [item for item in group if item.rows.table_id not in refused]
            written = iter(await self._write(conn, writing) if writing else [])
        return [refused.get(item.rows.table_id) or next(written) for item in group]

    async def _write(self, conn: asyncpg.Connection, group: list[_Pending]) -> list[WriteResult]:
        total = sum(item.rows.num_rows for item in group)
        first = await conn.fetchval("SELECT fusou_allocate_seq($1)", total)
        results: list[WriteResult] = []
        for item in group:
            n = item.rows.num_rows
            results.append(WriteResult(n, item.rows.schema_version, first, first + n - 1))
            first += n
        replays = await self._claim_request_ids(conn, group, results)
        accepted = [
            (item, results[i].first_seq) for i, item in enumerate(group) if i not in replays
        ]
        for i, replay in replays.items():
            results[i] = replay
        if accepted:
            await conn.copy_to_table(
                "fusou_buffer",
                source=self._copy_stream(accepted),
                columns=list(COPY_COLUMNS),
                format="binary",
            )
        return results

    async def _claim_request_ids(
        self, conn: asyncpg.Connection, writers: list[_Pending], results: list[WriteResult]
    ) -> dict[int, WriteResult]:
        """Record each request_id with its answer; return the answers of ids already applied."""
        indexed = [(i, item) for i, item in enumerate(writers) if item.request_id]
        if not indexed:
            return {}
        won = await record_answers(
            conn,
            Answers.INGEST,
            [(item.dataset_id, item.request_id or "", results[i].to_json()) for i, item in indexed],
        )
        replays: dict[int, WriteResult] = {}
        for i, item in indexed:
            assert item.request_id is not None
            if (item.dataset_id, item.request_id) in won:
                continue
            previous = await lookup_response(conn, item.dataset_id, item.request_id)
            assert previous is not None, "a conflicting request id must have a stored answer"
            replays[i] = previous
        return replays

    async def _copy_stream(self, items: list[tuple[_Pending, int]]) -> AsyncIterator[bytes]:
        yield HEADER
        for item, first_seq in items:
            # Building the tuples is numpy work on large buffers; keep the event loop free.
            yield await run_cpu(copy_rows, item.rows, first_seq)
        yield TRAILER
