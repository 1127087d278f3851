"""Where CPU-heavy work (decoding, encoding, compression) runs: never on the event loop.

Two places, both sized by FUSOU_CPU_WORKERS:

- ``run_in_process``: a spawn-based process pool, for work whose inputs and outputs are plain
  bytes and arrays. It uses the other cores for real; the pool is per process and shared by
  every service hosted in it. With FUSOU_CPU_WORKERS=0 the work runs on the thread below.
- ``run_cpu``: a small dedicated thread pool, for work that needs objects of this process.
  Small on purpose: the work is mostly Python holding the GIL, and many threads contending for
  it spend more CPU on contention than on work (measured: twice the CPU per ingested row with
  asyncio's default pool, against one dedicated thread).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import importlib
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

from fusou.errors import Unavailable
from fusou.parent_death import Spawner, exit_with_parent

P = ParamSpec("P")
R = TypeVar("R")

log = logging.getLogger(__name__)

_workers = 1
_threads: ThreadPoolExecutor | None = None
# zlib, snappy and zstd release the GIL: (de)compressing blocks on two threads uses two cores.
CODEC_THREADS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fusou-codec")
_processes: ProcessPoolExecutor | None = None


def configure(workers: int) -> None:
    """Set the number of worker processes (0: run on a thread); applies to later work."""
    global _workers, _processes  # noqa: PLW0603 - one pool per process, by design
    if workers != _workers and _processes is not None:
        _processes.shutdown(wait=False, cancel_futures=True)
        _processes = None
    _workers = workers


def _thread_pool() -> ThreadPoolExecutor:
    global _threads  # noqa: PLW0603
    if _threads is None:
        _threads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusou-cpu")
    return _threads


def _process_pool() -> ProcessPoolExecutor:
    global _processes  # noqa: PLW0603
    if _processes is None:
        # Workers end with this process even when it is killed: nothing else would stop them.
        _processes = ProcessPoolExecutor(
            max_workers=_workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=exit_with_parent,
            initargs=(Spawner(),),
        )
    return _processes


async def run_cpu(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_thread_pool(), functools.partial(fn, *args, **kwargs))


async def run_cpu_unless_small(
    small: bool, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs
) -> R:
    """``run_cpu``, or a direct call when the caller knows the work is small: under a
    millisecond, which is less than the hop to the thread and back costs the request."""
    if small:
        return fn(*args, **kwargs)
    return await run_cpu(fn, *args, **kwargs)


async def run_in_process(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a picklable top-level function in a worker process."""
    if _workers == 0:
        return await run_cpu(fn, *args, **kwargs)
    global _processes  # noqa: PLW0603
    loop = asyncio.get_running_loop()
    pool = _process_pool()
    try:
        return await loop.run_in_executor(pool, functools.partial(fn, *args, **kwargs))
    except BrokenProcessPool:
        log.error("a CPU worker process died; starting a new pool")
        if _processes is pool:
            _processes = None
        raise Unavailable("a worker process died while handling the request; retry") from None


def _ready(modules: tuple[str, ...]) -> bool:
    for name in modules:
        importlib.import_module(name)
    return True


async def warm_up(*modules: str) -> None:
    """Start the worker processes now rather than on the first request, importing ``modules``
    (the heavy ones the work will need) in each so that the first real request is fast."""
    if _workers > 0:
        await asyncio.gather(*(run_in_process(_ready, modules) for _ in range(_workers)))


@atexit.register
def _shutdown() -> None:
    if _processes is not None:
        _processes.shutdown(wait=False, cancel_futures=True)
