"""Retrying object-store calls that failed transiently (throttling, 5xx, a dropped connection),
with exponential backoff and jitter. Only for calls that are safe to repeat: reads, deletes and
puts of whole bytes (a streamed put cannot be replayed)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fusou.objectstore.base import TransientObjectStoreError

T = TypeVar("T")

log = logging.getLogger(__name__)

ATTEMPTS = 5
BASE_DELAY_S = 0.2
MAX_DELAY_S = 5.0


def backoff_delay(attempt: int, base_s: float = BASE_DELAY_S, max_s: float = MAX_DELAY_S) -> float:
    """The wait before retry ``attempt`` (1-based): doubling, capped, with full jitter so that
    runners failing together do not retry together."""
    return random.uniform(0, min(max_s, base_s * 2 ** (attempt - 1)))


async def with_retries(call: Callable[[], Awaitable[T]], what: str, attempts: int = ATTEMPTS) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except TransientObjectStoreError as exc:
            if attempt == attempts:
                raise
            delay = backoff_delay(attempt)
            log.warning("%s failed (%s); retry %d in %.2fs", what, exc, attempt, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
