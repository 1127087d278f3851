"""The compactor's rewrite threads belong to a compactor: none is built when a module is
imported, they are created at the first rewrite and shut down by ``close``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

import fusou.compact.commit
import fusou.compact.compactor
import fusou.compact.output
import fusou.compact.rewrite
from fusou.compact.rewrite import RewriteThreads


def test_no_thread_pool_is_built_at_import() -> None:
    for module in (
        fusou.compact.compactor,
        fusou.compact.rewrite,
        fusou.compact.commit,
        fusou.compact.output,
    ):
        assert not [v for v in vars(module).values() if isinstance(v, ThreadPoolExecutor)]


def test_threads_are_created_when_needed_and_shut_down_on_close() -> None:
    threads = RewriteThreads()
    assert threads._pools is None  # noqa: SLF001
    pools = threads._get()  # noqa: SLF001
    assert pools.decode.submit(sum, [1, 2]).result() == 3
    threads.close()
    for pool in (pools.decode, pools.rewrite, pools.encode):
        with pytest.raises(RuntimeError):
            pool.submit(sum, [1])
    # A later rewrite gets fresh threads.
    assert threads._get() is not pools  # noqa: SLF001
    threads.close()
