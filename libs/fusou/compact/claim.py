"""A compaction run's claim on a dataset, kept alive for exactly as long as the run is.

A run claims a dataset (``compaction_in_progress`` with ``compaction_claim_expires_at``) for
FUSOU_COMPACT_CLAIM_TTL_S and a task of the run renews it every third of that, so a runner that
dies (killed, its host lost, its task cancelled without a release) gives the dataset up within
one TTL, while a live run keeps it as long as its work takes, up to its time bound
(FUSOU_COMPACT_TIMEOUT_MS; one that hangs past that loses it one TTL later). Expiry is judged by the
database's clock on both sides, so runners' clocks need not agree.

The renewals run on the event loop, which the run's CPU work leaves alone: that work runs on
threads (the rewrite, encoding, decoding, codecs) whose Python parts hand the GIL back every
``sys.getswitchinterval()`` (5 ms) and whose native parts (Arrow, zstd, zlib) release it. A
renewal can only be late by as long as one native call holds the GIL, and it has two thirds
of the TTL of slack.

The claim only decides who *schedules* work on a dataset; data stays right when two runners
overlap anyway (a claim lost to a database outage, a run stalled past its claim): each table's
work runs under that table's advisory lock, and the commit retires only inputs still active,
refusing otherwise. So a run that finds its claim gone or taken logs it and carries on: its
work is as safe as before, and its release is conditional on still holding the claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import asyncpg

log = logging.getLogger(__name__)

# Renewals per TTL: one may fail or be late twice before the claim lapses.
RENEWALS_PER_TTL: Final = 3

CLAIM_SQL: Final = (
    "UPDATE fusou_datasets SET compaction_in_progress = true, "
    "  compaction_needed = false, compaction_claimed_by = $2, "
    "  compaction_claim_expires_at = now() + make_interval(secs => $3) "
    "WHERE dataset_id = $1 "
    "  AND (NOT compaction_in_progress OR compaction_claim_expires_at < now()) "
    "RETURNING 1"
)
# Still ours, even if it lapsed meanwhile (say, the database was out of reach) as long as no
# other runner took it over.
_RENEW_SQL: Final = (
    "UPDATE fusou_datasets "
    "SET compaction_claim_expires_at = now() + make_interval(secs => $3) "
    "WHERE dataset_id = $1 AND compaction_in_progress AND compaction_claimed_by = $2 "
    "RETURNING 1"
)


class ClaimKeeper:
    """Renews one runner's claims, one task per claimed dataset."""

    def __init__(self, pool: asyncpg.Pool, runner_id: str, ttl_s: float) -> None:
        self._pool = pool
        self._runner_id = runner_id
        self._ttl_s = ttl_s
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def keep(self, dataset_id: str, deadline: float) -> None:
        """Start renewing the claim just taken on ``dataset_id``, up to the run's ``deadline``
        (event loop time): a run that hangs past its time bound then loses the claim one TTL
        later, as a dead one does."""
        previous = self._tasks.pop(dataset_id, None)
        if previous is not None:
            # A run of this runner whose claim lapsed still renews it: one renewer per claim.
            previous.cancel()
        self._tasks[dataset_id] = asyncio.create_task(
            self._renew(dataset_id, deadline), name=f"fusou-claim-{dataset_id}"
        )

    async def stop(self, dataset_id: str) -> None:
        """Stop renewing (before the claim is released, so no renewal follows the release)."""
        task = self._tasks.pop(dataset_id, None)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _renew(self, dataset_id: str, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        interval = self._ttl_s / RENEWALS_PER_TTL
        while True:
            await asyncio.sleep(interval)
            if loop.time() >= deadline:
                log.warning(
                    "compaction of %s is past its time bound; its claim lapses unless released",
                    dataset_id,
                )
                return
            try:
                async with self._pool.acquire(timeout=interval) as conn:
                    held = await conn.fetchval(
                        _RENEW_SQL, dataset_id, self._runner_id, self._ttl_s, timeout=interval
                    )
            except Exception:  # logged: a failed renewal must not end the renewing
                log.warning("could not renew the compaction claim on %s", dataset_id, exc_info=True)
                continue
            if held is None:
                log.warning(
                    "the compaction claim on %s was lost (taken over or cleared); the run goes "
                    "on, its tables' locks and its commit's checks keep the data right",
                    dataset_id,
                )
                return


class DatasetLease:
    """A runner's claims on datasets: taking one (renewed until released or past the run's
    time bound) and giving it back with what the run achieved."""

    def __init__(self, pool: asyncpg.Pool, runner_id: str, ttl_s: float) -> None:
        self._pool = pool
        self._runner_id = runner_id
        self._ttl_s = ttl_s
        self._keeper = ClaimKeeper(pool, runner_id, ttl_s)

    async def claim(self, dataset_id: str, deadline: float) -> bool | None:
        """True when this run now holds the dataset (and renews the claim until it releases
        it or passes ``deadline``), False when another does, None when there is no such
        dataset."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(CLAIM_SQL, dataset_id, self._runner_id, self._ttl_s)
            if row is not None:
                self._keeper.keep(dataset_id, deadline)
                return True
            exists = await conn.fetchval(
                "SELECT 1 FROM fusou_datasets WHERE dataset_id = $1", dataset_id
            )
        return False if exists else None

    async def release(self, dataset_id: str, *, succeeded: bool, more: bool) -> None:
        # Shielded: a cancelled run must still give its claim back.
        await asyncio.shield(self._release_now(dataset_id, succeeded, more))

    async def _release_now(self, dataset_id: str, succeeded: bool, more: bool) -> None:
        await self._keeper.stop(dataset_id)
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE fusou_datasets SET compaction_in_progress = false, "
                "  compaction_claimed_by = NULL, compaction_claim_expires_at = NULL, "
                "  compaction_needed = compaction_needed OR $3, "
                "  last_compacted_at = CASE WHEN $2 THEN now() ELSE last_compacted_at END, "
                "  last_compaction_attempt_at = now() "
                "WHERE dataset_id = $1 AND compaction_claimed_by = $4",
                dataset_id,
                succeeded,
                more,
                self._runner_id,
            )
