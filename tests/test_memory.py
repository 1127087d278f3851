"""The malloc thresholds that keep large freed buffers for reuse."""

from __future__ import annotations

import ctypes
import platform

import pytest

from fusou.memory import keep_freed_memory


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_applies_on_glibc_and_large_buffers_still_work() -> None:
    assert keep_freed_memory() is True
    # Buffers around and above the new mmap threshold still allocate, fill and free.
    for size in (1 << 20, 64 << 20, 80 << 20):
        buffer = ctypes.create_string_buffer(size)
        buffer[size - 1] = b"x"
        assert buffer.raw[-1:] == b"x"
        del buffer
