"""CPU worker processes end when the process that started them dies, even by SIGKILL: through
the parent-death signal when the main thread started them, through the watching thread
otherwise (a worker started from a thread that ends must not die with that thread)."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor

import psutil
import pytest

from fusou import cpu
from fusou.parent_death import Spawner, exit_with_parent

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")

_PR_GET_PDEATHSIG = 2

# The parent under test: starts a pool's worker (from its main thread or from a thread that
# then ends), prints the worker's pid and waits to be killed.
_PARENT = """
import os, sys, threading, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from fusou.parent_death import Spawner, exit_with_parent

pool = ProcessPoolExecutor(
    1, mp_context=multiprocessing.get_context("spawn"),
    initializer=exit_with_parent, initargs=(Spawner(),),
)
if sys.argv[1] == "thread":
    starter = threading.Thread(target=lambda: pool.submit(os.getpid).result())
    starter.start()
    starter.join()
print(pool.submit(os.getpid).result(), flush=True)
time.sleep(3600)
"""


def _death_signal() -> int:
    value = ctypes.c_int(-1)
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(_PR_GET_PDEATHSIG, ctypes.byref(value), 0, 0, 0) == 0
    return value.value


@linux_only
async def test_workers_started_by_the_main_thread_get_the_death_signal() -> None:
    cpu.configure(1)
    assert await cpu.run_in_process(_death_signal) == signal.SIGKILL


@linux_only
def test_workers_started_by_another_thread_outlive_it() -> None:
    pool = ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=exit_with_parent,
        initargs=(Spawner(),),
    )
    try:
        started: list[int] = []
        starter = threading.Thread(target=lambda: started.append(pool.submit(os.getpid).result()))
        starter.start()
        starter.join()
        # The same worker still answers once its starting thread has ended, and carries no
        # signal tied to that thread.
        assert pool.submit(os.getpid).result(timeout=60) == started[0]
        assert pool.submit(_death_signal).result(timeout=60) == 0
    finally:
        pool.shutdown()


@pytest.mark.parametrize("started_from", ["main", "thread"])
def test_a_killed_parents_workers_exit(started_from: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, started_from],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert parent.stdout is not None
        worker = psutil.Process(int(parent.stdout.readline()))
        assert worker.ppid() == parent.pid and worker.is_running()
    finally:
        parent.kill()
        parent.wait()
    # A liveness wait with a generous bound, not a timing claim.
    _gone, alive = psutil.wait_procs([worker], timeout=60)
    assert not alive, f"worker {worker.pid} outlived its killed parent"
