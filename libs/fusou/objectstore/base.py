"""The backend-neutral object store interface, its value types and its errors."""

from __future__ import annotations

import abc
import asyncio
import builtins
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Final, Self

from fusou.errors import Unavailable

MiB: Final = 1024 * 1024
DEFAULT_PART_SIZE: Final = 8 * MiB

# A local put writes "<name>.<random>.fusou-tmp" next to its target before renaming it into
# place. Reserving the suffix for every backend keeps the key space identical everywhere and
# guarantees a half-written file can never be mistaken for an object.
TEMP_SUFFIX: Final = ".fusou-tmp"

PutData = bytes | bytearray | memoryview | AsyncIterable[bytes]
"""What ``put`` accepts: the whole object, or its bytes as an async stream of chunks."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    """Relative to the store's prefix, exactly as passed to ``put``."""
    size: int
    last_modified: datetime
    """Timezone-aware, UTC."""


class ObjectStoreError(Exception):
    """Base class of every error an object store raises on purpose.

    A plain ObjectStoreError is a fault of the caller or of the store's contents (a key that
    collides with a directory, a malformed request): a bug, not something a retry fixes.
    """


class ObjectNotFound(ObjectStoreError):
    def __init__(self, key: str) -> None:
        super().__init__(f"object not found: {key!r}")
        self.key = key


class ObjectStoreUnavailable(ObjectStoreError, Unavailable):
    """The store cannot do the work: the file system refuses (permissions, a full disk, an I/O
    error, a root that is not a directory) or S3 does (no connection, a missing bucket, refused
    credentials). A dependency failure, not a bug: it is also the domain's ``Unavailable``, so it
    reaches clients as UNAVAILABLE with this message, from any thread or process."""


class TransientObjectStoreError(ObjectStoreUnavailable):
    """Throttling, a server-side failure or a broken connection: the same call may succeed later."""


def _check_path(value: str, what: str) -> None:
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL: {value!r}")
    if "\\" in value:
        raise ValueError(f"{what} must not contain a backslash: {value!r}")
    if value.startswith("/"):
        raise ValueError(f"{what} must be relative (no leading '/'): {value!r}")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if every backend can store it, else raise ValueError.

    Besides the obvious (empty, absolute, '..', backslash, NUL), empty and '.' segments are refused
    because a filesystem would fold "a//b" and "a/./b" into "a/b" while S3 keeps them distinct,
    and the two backends must agree on which keys are the same object.
    """
    if not isinstance(key, str):
        raise TypeError(f"object key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("object key must not be empty")
    _check_path(key, "object key")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            raise ValueError(f"object key has an empty, '.' or '..' segment: {key!r}")
        if segment.endswith(TEMP_SUFFIX):
            raise ValueError(f"object key segments must not end with {TEMP_SUFFIX!r}: {key!r}")
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` unchanged if it is usable for ``list``, else raise ValueError.

    A listing prefix is a plain string prefix ("raw/1" matches "raw/10/x"), so it may be empty or
    end in '/'; its complete segments follow the key rules, so it can name nothing outside the
    store and nothing no key could start with.
    """
    if not isinstance(prefix, str):
        raise TypeError(f"list prefix must be a str, not {type(prefix).__name__}")
    _check_path(prefix, "list prefix")
    # Only the part before the last '/' names directories; what follows it merely filters names.
    for segment in prefix.split("/")[:-1]:
        if segment in ("", ".", ".."):
            raise ValueError(f"list prefix has an empty, '.' or '..' segment: {prefix!r}")
    return prefix


def validate_range(offset: int, length: int) -> None:
    if offset < 0 or length < 0:
        raise ValueError(f"byte range must not be negative: offset={offset}, length={length}")


class ObjectStore(abc.ABC):
    """Whole-object writes, whole or ranged reads, deletes and sorted listings of flat keys.

    Keys are '/'-separated and relative to wherever the concrete store is rooted.
    """

    # How many ranged reads ``get_ranges`` keeps in flight; more would only queue for the
    # connection pool (S3) or the default thread pool (local) while holding their buffers.
    max_concurrent_ranges: int = 16

    _closed: bool = False

    def _ensure_open(self) -> None:
        # Fail loudly instead of, for S3, silently opening a new connection pool nobody will close.
        if self._closed:
            # Only at shutdown, under calls still running: for them the store is gone.
            raise ObjectStoreUnavailable(f"{self!r} is closed (the service is shutting down)")

    @abc.abstractmethod
    async def put(self, key: str, data: PutData) -> ObjectInfo:
        """Create or replace ``key``; readers see the old object or the new one, never a mix.

        When ``data`` is an async iterable it is consumed incrementally, never held whole. If it
        raises, nothing is written and its exception propagates unchanged.
        """

    @abc.abstractmethod
    async def get(self, key: str) -> bytes: ...

    @abc.abstractmethod
    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset``, fewer where the object ends before that."""

    async def get_ranges(self, key: str, ranges: Sequence[tuple[int, int]]) -> builtins.list[bytes]:
        """One result per ``(offset, length)``, in order; the first failure cancels the rest."""
        validate_key(key)
        for offset, length in ranges:
            validate_range(offset, length)
        if not ranges:
            return []
        limit = asyncio.Semaphore(self.max_concurrent_ranges)

        async def one(offset: int, length: int) -> bytes:
            async with limit:
                return await self.get_range(key, offset, length)

        tasks = [asyncio.ensure_future(one(offset, length)) for offset, length in ranges]
        try:
            return builtins.list(await asyncio.gather(*tasks))
        except BaseException:
            # gather leaves the siblings of a failed task running; don't let them outlive the call
            # (they would keep connections busy for a result nobody reads).
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    @abc.abstractmethod
    async def head(self, key: str) -> ObjectInfo: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""

    @abc.abstractmethod
    async def delete_many(self, keys: Iterable[str]) -> None:
        """Remove every key given; missing keys are not errors."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a string prefix), sorted by key."""

    async def sweep_incomplete(self, older_than: datetime, prefix: str = "") -> int:
        """Delete what writes that never finished left behind under ``prefix`` (a string
        prefix of the keys they were writing) before ``older_than``; how many were deleted.

        ``put`` cleans up after itself whenever it can run at all; this is for the writes whose
        process was killed. A backend whose writes leave nothing behind keeps this default.
        Callers pass a horizon older than the longest write (the delete grace period): a write
        still in progress then fails at its end instead of leaving a half-written object.
        """
        validate_prefix(prefix)
        return 0

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise ObjectStoreError unless the store answers and its bucket or root exists."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; idempotent. The store cannot be used afterwards."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
