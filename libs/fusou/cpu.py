"""Where CPU-heavy work (decoding, encoding, compression) runs: off the event loop, on a small
dedicated thread pool.

A small pool, not asyncio's default one: the work is mostly Python holding the GIL, and many
threads contending for it spend more CPU on the contention than on the work (measured: twice
the CPU per ingested row with the default pool, against one dedicated thread).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

_workers = 1
_executor: ThreadPoolExecutor | None = None


def configure(workers: int) -> None:
    """Set the pool size (FUSOU_CPU_WORKERS); takes effect for work submitted afterwards."""
    global _workers, _executor  # noqa: PLW0603 - one pool per process, by design
    if workers != _workers and _executor is not None:
        _executor.shutdown(wait=False)
        _executor = None
    _workers = workers


def _pool() -> ThreadPoolExecutor:
    global _executor  # noqa: PLW0603
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=_workers, thread_name_prefix="fusou-cpu")
    return _executor


async def run_cpu(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_pool(), functools.partial(fn, *args, **kwargs))
