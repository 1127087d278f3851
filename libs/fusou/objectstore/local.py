"""An object store in a local directory: the embedded default, and what tests run against."""

from __future__ import annotations

import asyncio
import builtins
import os
import secrets
import stat
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, ParamSpec, TypeVar

from fusou.objectstore.base import (
    TEMP_SUFFIX,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreUnavailable,
    PutData,
    validate_key,
    validate_prefix,
    validate_range,
)

# Streamed chunks are gathered up to this size before a write, so that an iterator of tiny
# chunks costs one thread hop per MiB rather than one per chunk.
_WRITE_BATCH: Final = 1024 * 1024

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Errors that mean "there is no object at this path": the file is gone, a path segment is a file,
# or the key names a directory (which holds other keys but is not an object itself).
_ABSENT = (FileNotFoundError, NotADirectoryError, IsADirectoryError)


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC)


def _temp_target(temp_name: str) -> str:
    """The name a temp file ".<name>.<random>.fusou-tmp" (see _AtomicFile) would have become."""
    return temp_name.removeprefix(".").removesuffix(TEMP_SUFFIX).rpartition(".")[0]


def _fsync_directory(directory: Path) -> None:
    # A rename or mkdir is only durable once the directory holding the new entry is synced.
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _failed(root: Path, action: str, key: str, exc: OSError) -> ObjectStoreUnavailable:
    """What an OSError of the file system means: the store cannot work (permissions, a full
    disk, an I/O error...), whatever the key. The cause stays in the message."""
    return ObjectStoreUnavailable(f"local object store {root}: cannot {action} {key!r}: {exc}")


def _root_problem(root: Path) -> str | None:
    """Why ``root`` cannot hold objects, if something that is not a directory (a file, a
    dangling or looping link) took its place or that of one of its ancestors."""
    try:
        st = os.stat(root)
    except FileNotFoundError:
        # Made with the first object: a missing root is an empty store, unless an ancestor is
        # in the way (which the next put reports).
        return None
    except OSError as exc:
        return f"{root} cannot be reached: {exc}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{root} is not a directory"
    return None


def _absent(root: Path, key: str) -> ObjectStoreError:
    """A path of ``key`` does not exist or is no file: the object is absent, unless the root
    itself is broken, in which case no object could be found and saying so would mislead."""
    problem = _root_problem(root)
    if problem is not None:
        return ObjectStoreUnavailable(f"local object store: cannot reach {key!r}: {problem}")
    return ObjectNotFound(key)


class _AtomicFile:
    """A temp file beside ``path`` that becomes ``path`` in one rename, or disappears.

    Every method blocks; callers run them in a worker thread.
    """

    def __init__(self, root: Path, key: str, path: Path) -> None:
        self._root = root
        self._key = key
        self._path = path
        self._new_dirs = self._make_parents(path.parent)
        # Same directory, so os.replace is a rename within one filesystem and therefore atomic.
        self._tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}{TEMP_SUFFIX}")
        # O_EXCL: never share a temp file with a concurrent writer of the same key. Mode 0o666 so
        # the umask, not this module, decides who may read the objects.
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self._file = os.fdopen(fd, "wb")

    def _make_parents(self, directory: Path) -> builtins.list[Path]:
        missing: builtins.list[Path] = []
        while not directory.is_dir():
            missing.append(directory)
            directory = directory.parent
        for new_dir in reversed(missing):
            try:
                new_dir.mkdir()
            except FileExistsError:
                if not new_dir.is_dir():
                    if not new_dir.is_relative_to(self._root) or new_dir == self._root:
                        # Not another key in the way: the store's root is unusable.
                        problem = _root_problem(self._root) or f"{new_dir} is not a directory"
                        raise ObjectStoreUnavailable(
                            f"local object store: cannot store {self._key!r}: {problem}"
                        ) from None
                    raise ObjectStoreError(
                        f"cannot store {self._key!r}: {new_dir} is an object, not a directory"
                    ) from None
        return missing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._file.write(data)

    def commit(self) -> os.stat_result:
        self._file.flush()
        os.fsync(self._file.fileno())
        # fstat before the rename: the result then describes our bytes even if another writer
        # replaces the key right after us.
        st = os.fstat(self._file.fileno())
        self._file.close()
        try:
            os.replace(self._tmp, self._path)
        except IsADirectoryError:
            raise ObjectStoreError(
                f"cannot store {self._key!r}: other keys already use it as a directory"
            ) from None
        _fsync_directory(self._path.parent)
        for new_dir in self._new_dirs:
            _fsync_directory(new_dir.parent)
        return st

    def abort(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``; key "a/b" is the file ``root/a/b``.

    Unlike S3, a key cannot be both an object and a directory: once "a/b" exists, putting "a"
    fails with ObjectStoreError, and vice versa.
    """

    def __init__(self, root: Path | str) -> None:
        # abspath, not resolve(): no filesystem access in a constructor that may run on the loop.
        self._root = Path(os.path.abspath(root))

    @property
    def root(self) -> Path:
        return self._root

    def __repr__(self) -> str:
        return f"LocalObjectStore({str(self._root)!r})"

    def _path(self, key: str) -> Path:
        validate_key(key)
        return self._root.joinpath(*key.split("/"))

    async def put(self, key: str, data: PutData) -> ObjectInfo:
        self._ensure_open()
        path = self._path(key)
        target = await asyncio.to_thread(self._open_atomic, key, path)
        try:
            if isinstance(data, bytes | bytearray | memoryview):
                await asyncio.to_thread(self._guarded, key, target.write, data)
            else:
                batch = bytearray()
                async for chunk in data:
                    batch += chunk
                    if len(batch) >= _WRITE_BATCH:
                        # Hand the filled buffer to the thread and start a new one, so the
                        # thread never reads a buffer this coroutine is appending to.
                        full, batch = batch, bytearray()
                        await asyncio.to_thread(self._guarded, key, target.write, full)
                if batch:
                    await asyncio.to_thread(self._guarded, key, target.write, batch)
            st = await asyncio.to_thread(self._guarded, key, target.commit)
        except BaseException:
            # Runs to completion in its thread even if this await is cancelled again.
            await asyncio.to_thread(target.abort)
            raise
        return ObjectInfo(key=key, size=st.st_size, last_modified=_mtime(st))

    def _open_atomic(self, key: str, path: Path) -> _AtomicFile:
        try:
            return _AtomicFile(self._root, key, path)
        except NotADirectoryError as exc:
            problem = _root_problem(self._root)
            if problem is not None:
                raise ObjectStoreUnavailable(
                    f"local object store: cannot store {key!r}: {problem}"
                ) from exc
            raise ObjectStoreError(
                f"cannot store {key!r}: one of its parent segments is an object"
            ) from None
        except ObjectStoreError:
            raise
        except OSError as exc:
            raise _failed(self._root, "store", key, exc) from exc

    def _guarded(self, key: str, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except ObjectStoreError:
            raise
        except OSError as exc:
            raise _failed(self._root, "store", key, exc) from exc

    async def get(self, key: str) -> bytes:
        self._ensure_open()
        return await asyncio.to_thread(self._read, key, self._path(key), 0, None)

    async def get_range(self, key: str, offset: int, length: int) -> bytes:
        self._ensure_open()
        path = self._path(key)
        validate_range(offset, length)
        return await asyncio.to_thread(self._read, key, path, offset, length)

    def _read(self, key: str, path: Path, offset: int, length: int | None) -> bytes:
        try:
            with open(path, "rb") as f:
                if length is None:
                    return f.read()
                # Clamp to what exists: a buffered read allocates the full length it is asked
                # for up front, so "everything from here" as a huge length would exhaust memory.
                available = max(0, os.fstat(f.fileno()).st_size - offset)
                length = min(length, available)
                if not length:
                    return b""
                f.seek(offset)
                # A buffered read keeps reading until it has ``length`` bytes or hits the end.
                return f.read(length)
        except _ABSENT:
            raise _absent(self._root, key) from None
        except OSError as exc:
            raise _failed(self._root, "read", key, exc) from exc

    async def check(self) -> None:
        self._ensure_open()
        await asyncio.to_thread(self._check_root)

    def _check_root(self) -> None:
        # The root is made with the first object: until then its nearest existing ancestor
        # must let it be made.
        directory = self._root
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
        if not directory.is_dir():
            raise ObjectStoreUnavailable(
                f"the store's root {self._root}: {directory} is not a directory"
            )
        if not os.access(directory, os.W_OK | os.X_OK):
            raise ObjectStoreUnavailable(
                f"the store's root {self._root}: {directory} is not writable"
            )

    async def head(self, key: str) -> ObjectInfo:
        self._ensure_open()
        path = self._path(key)
        st = await asyncio.to_thread(self._stat, key, path)
        return ObjectInfo(key=key, size=st.st_size, last_modified=_mtime(st))

    def _stat(self, key: str, path: Path) -> os.stat_result:
        try:
            st = os.stat(path)
        except _ABSENT:
            raise _absent(self._root, key) from None
        except OSError as exc:
            raise _failed(self._root, "stat", key, exc) from exc
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(key)
        return st

    async def delete(self, key: str) -> None:
        self._ensure_open()
        path = self._path(key)
        await asyncio.to_thread(self._unlink, [(key, path)])

    async def delete_many(self, keys: Iterable[str]) -> None:
        self._ensure_open()
        # Validate everything first so a bad key in the middle does not leave half the batch done.
        targets = [(key, self._path(key)) for key in keys]
        if targets:
            await asyncio.to_thread(self._unlink, targets)

    def _unlink(self, targets: builtins.list[tuple[str, Path]]) -> None:
        # Emptied directories stay: removing them would race with a concurrent put that has just
        # created the same directory for its temp file.
        for key, path in targets:
            try:
                os.unlink(path)
            except _ABSENT:
                pass
            except OSError as exc:
                raise _failed(self._root, "delete", key, exc) from exc

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        self._ensure_open()
        validate_prefix(prefix)
        for info in await asyncio.to_thread(self._scan, prefix):
            yield info

    def _files(
        self, prefix: str, action: str, *, root_must_exist: bool
    ) -> Iterator[tuple[os.DirEntry[str], str]]:
        """Every entry that is not a directory, with the key prefix of its directory, in the
        directories where a key under ``prefix`` can be (temp files included: callers pick).
        ``root_must_exist``: a root that something else took the place of fails the walk
        instead of reading as an empty store."""
        head, _, _ = prefix.rpartition("/")
        start = self._root.joinpath(*head.split("/")) if head else self._root
        pending = [(str(start), f"{head}/" if head else "")]
        while pending:
            directory, key_prefix = pending.pop()
            try:
                with os.scandir(directory) as entries:
                    listing = builtins.list(entries)
            except (FileNotFoundError, NotADirectoryError):
                problem = _root_problem(self._root) if root_must_exist else None
                if problem is not None:
                    # Not an empty listing: nothing under the root can be seen.
                    raise ObjectStoreUnavailable(
                        f"local object store: cannot {action} {prefix!r}: {problem}"
                    ) from None
                continue
            except OSError as exc:
                raise _failed(self._root, action, prefix, exc) from exc
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    sub = f"{key_prefix}{entry.name}/"
                    # Descend only where a matching key can still be: below the prefix, or on
                    # the way down to it.
                    if sub.startswith(prefix) or prefix.startswith(sub):
                        pending.append((entry.path, sub))
                else:
                    yield entry, key_prefix

    def _scan(self, prefix: str) -> builtins.list[ObjectInfo]:
        found: builtins.list[ObjectInfo] = []
        for entry, key_prefix in self._files(prefix, "list", root_must_exist=True):
            key = key_prefix + entry.name
            if entry.name.endswith(TEMP_SUFFIX) or not key.startswith(prefix):
                continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except FileNotFoundError:
                continue  # deleted since scandir saw it
            found.append(ObjectInfo(key=key, size=st.st_size, last_modified=_mtime(st)))
        # Walk order is per directory ("a/b" before "a-c"); the contract is order by whole key.
        found.sort(key=lambda info: info.key)
        return found

    async def sweep_incomplete(self, older_than: datetime, prefix: str = "") -> int:
        """Delete the temp files of killed puts: those last written before ``older_than`` (a
        put writes its temp file as its data comes, so only a stalled or dead one gets old). A
        put whose temp file goes fails when it renames it, and writes nothing."""
        self._ensure_open()
        validate_prefix(prefix)
        return await asyncio.to_thread(self._sweep_temp_files, prefix, older_than.timestamp())

    def _sweep_temp_files(self, prefix: str, horizon: float) -> int:
        swept = 0
        for entry, key_prefix in self._files(prefix, "sweep", root_must_exist=False):
            if not entry.name.endswith(TEMP_SUFFIX):
                continue
            if not (key_prefix + _temp_target(entry.name)).startswith(prefix):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= horizon:
                    continue
                os.unlink(entry.path)
            except FileNotFoundError:
                continue  # its put finished (renamed it) or gave up meanwhile
            except OSError as exc:
                raise _failed(self._root, "delete temp file", entry.path, exc) from exc
            swept += 1
        return swept

    async def close(self) -> None:
        self._closed = True
