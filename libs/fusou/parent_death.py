"""Child processes that end when the process that started them dies, however it dies.

A worker of a process pool blocks on its task queue, which never reaches end-of-file (the
worker holds that pipe's write end itself), so without help it outlives a parent killed with
SIGKILL or by the OOM killer. Two mechanisms, because neither covers every case alone:

- On Linux, ``PR_SET_PDEATHSIG``: the kernel sends the worker SIGKILL when its parent dies,
  even while the worker is deep in C code holding the GIL. The signal follows the *thread*
  that forked the worker, not the process, so it is only set when that thread is the parent's
  main thread (whose end is the process's end); a worker started from another thread (a pool
  replacing a worker from its manager thread, say) would otherwise die with that thread.
- Everywhere (POSIX), a daemon thread that polls ``os.getppid()``: a dead parent's children are
  re-parented (to init or a subreaper), so a changed parent pid means the parent is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Final

# How often the fallback thread looks at its parent: a worker notices a dead parent within
# this, at the cost of one system call per interval.
POLL_INTERVAL_S: Final = 0.5

_PR_SET_PDEATHSIG: Final = 1


class Spawner:
    """Who starts a worker: the parent's pid and whether its main thread does the starting.

    Evaluated when pickled, which a spawn-based pool does in the thread starting each worker,
    so one pool's workers each learn about their own start.
    """

    def __init__(self, pid: int | None = None, from_main_thread: bool = False) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.from_main_thread = from_main_thread

    def __reduce__(self) -> tuple[type[Spawner], tuple[int, bool]]:
        return (Spawner, (os.getpid(), threading.current_thread() is threading.main_thread()))


def _set_parent_death_signal(sig: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_INTERVAL_S)
    # Nothing of a worker's needs flushing: its results only ever went to the dead parent.
    os._exit(1)


def exit_with_parent(spawner: Spawner) -> None:
    """Make this process end once ``spawner``'s process has died; a pool's worker initializer."""
    if spawner.from_main_thread and sys.platform == "linux":
        _set_parent_death_signal(signal.SIGKILL)
    if os.name != "posix":
        return  # getppid() does not change when a Windows parent dies
    # The parent may have died before the signal was armed: it would then never come.
    if os.getppid() != spawner.pid:
        os._exit(1)
    threading.Thread(
        target=_watch, args=(spawner.pid,), name="fusou-parent-watch", daemon=True
    ).start()
