"""The malloc thresholds that keep large freed buffers for reuse."""

from __future__ import annotations

import ctypes
import platform

import pyarrow as pa
import pytest

from fusou.memory import keep_freed_memory

glibc_only = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


@glibc_only
def test_applies_on_glibc_and_large_buffers_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    before = pa.default_memory_pool()
    try:
        assert keep_freed_memory() is True
        assert pa.default_memory_pool().backend_name == "system"
        assert pa.array(range(1000)).sum().as_py() == 499500
    finally:
        pa.set_memory_pool(before)
    # Buffers around and above the new mmap threshold still allocate, fill and free.
    for size in (1 << 20, 64 << 20, 80 << 20):
        buffer = ctypes.create_string_buffer(size)
        buffer[size - 1] = b"x"
        assert buffer.raw[-1:] == b"x"
        del buffer


@glibc_only
def test_an_operator_choice_of_arrow_pool_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "mimalloc")
    before = pa.default_memory_pool()
    try:
        pa.set_memory_pool(pa.mimalloc_memory_pool())
        assert keep_freed_memory() is True
        assert pa.default_memory_pool().backend_name == "mimalloc"
    finally:
        pa.set_memory_pool(before)
