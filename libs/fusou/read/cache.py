"""A byte-bounded LRU cache of decoded blocks. Objects are immutable, so entries never go
stale; they only age out."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

import pyarrow as pa


def _held_bytes(table: pa.Table) -> int:
    # The memory an entry keeps alive, whole buffers counted; also far cheaper than ``nbytes``,
    # which works out the byte ranges each array uses.
    return int(table.get_total_buffer_size())


class BlockCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, pa.Table] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> pa.Table | None:
        table = self._entries.get(key)
        if table is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return table

    def put(self, key: Hashable, table: pa.Table) -> None:
        size = _held_bytes(table)
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= _held_bytes(old)
        self._entries[key] = table
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= _held_bytes(evicted)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)
