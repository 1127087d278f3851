"""The error map's rules for dependency failures, exception by exception: PostgreSQL lost,
ended or refusing, the network or the operating system refusing, the object store failing,
each answers UNAVAILABLE (or DEADLINE_EXCEEDED) with the cause in the message; what is a bug
stays INTERNAL. No server or database needed: the exceptions are built as the libraries raise
them, and the local store fails on a real file system."""

from __future__ import annotations

import errno
import pickle
import socket
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from fusou import errors
from fusou.db.failures import breaks_connection, database_failure
from fusou.objectstore import (
    LocalObjectStore,
    ObjectNotFound,
    ObjectStoreError,
    ObjectStoreUnavailable,
    TransientObjectStoreError,
)
from fusou.objectstore.s3 import _translate_error
from fusou.server.status import map_exception

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
INTERNAL = grpc.StatusCode.INTERNAL
ABORTED = grpc.StatusCode.ABORTED
exc = asyncpg.exceptions


def _closed_transaction() -> BaseException:
    """What asyncpg raises when a transaction ends on a connection the server closed: the
    symptom, with the loss behind it."""
    lost = exc.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation: "
        "terminating connection due to administrator command"
    )
    symptom: BaseException = exc.InterfaceError(
        "cannot call Transaction.__aexit__(): the underlying connection is closed"
    )
    symptom.__context__ = lost
    return symptom


def _client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "m"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "GetObject")


@pytest.mark.parametrize(
    ("error", "code", "said"),
    [
        # The session ended or the connection went away.
        (
            exc.AdminShutdownError("terminating connection due to administrator command"),
            UNAVAILABLE,
            "PostgreSQL ended the session: AdminShutdownError [57P01]: terminating",
        ),
        (exc.CrashShutdownError("crash"), UNAVAILABLE, "PostgreSQL ended the session"),
        (exc.IdleSessionTimeoutError("idle"), UNAVAILABLE, "PostgreSQL ended the session"),
        (
            exc.IdleInTransactionSessionTimeoutError("idle in transaction"),
            UNAVAILABLE,
            "PostgreSQL ended the session",
        ),
        (
            exc.CannotConnectNowError("the database system is starting up"),
            UNAVAILABLE,
            "PostgreSQL is starting up or shutting down: CannotConnectNowError [57P03]: "
            "the database system is starting up",
        ),
        (
            exc.CannotConnectNowError("the database system is shutting down"),
            UNAVAILABLE,
            "the database system is shutting down",
        ),
        (
            exc.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
            UNAVAILABLE,
            "lost the connection to PostgreSQL: ConnectionDoesNotExistError [08003]",
        ),
        (exc.ConnectionFailureError("failure"), UNAVAILABLE, "lost the connection to PostgreSQL"),
        (exc.PostgresConnectionError("x"), UNAVAILABLE, "lost the connection to PostgreSQL"),
        (
            exc.InterfaceError("cannot call Connection.fetch(): connection is closed"),
            UNAVAILABLE,
            "lost the connection to PostgreSQL: InterfaceError: cannot call",
        ),
        (exc.InterfaceError("pool is closing"), UNAVAILABLE, "pool is closing"),
        (
            _closed_transaction(),
            UNAVAILABLE,
            "lost the connection to PostgreSQL: ConnectionDoesNotExistError [08003]: "
            "connection was closed in the middle of operation: terminating connection",
        ),
        (
            exc.InternalClientError("cannot switch to state 11; another operation (2) is ..."),
            UNAVAILABLE,
            "the connection to PostgreSQL broke: InternalClientError: cannot switch",
        ),
        # The server lacks something, or refuses this service's configuration.
        (
            exc.TooManyConnectionsError("sorry, too many clients already"),
            UNAVAILABLE,
            "PostgreSQL is out of resources: TooManyConnectionsError [53300]",
        ),
        (exc.DiskFullError("could not extend file"), UNAVAILABLE, "out of resources"),
        (exc.PostgresIOError("could not read block"), UNAVAILABLE, "system error"),
        (
            exc.InvalidPasswordError('password authentication failed for user "fusou"'),
            UNAVAILABLE,
            "PostgreSQL refused this service's login",
        ),
        (exc.InvalidCatalogNameError('database "x" does not exist'), UNAVAILABLE, "no such"),
        # Cancelled statements: PostgreSQL's own deadline, or an operator.
        (
            exc.QueryCanceledError("canceling statement due to statement timeout"),
            DEADLINE,
            "PostgreSQL did not finish in time: QueryCanceledError [57014]",
        ),
        (
            exc.QueryCanceledError("canceling statement due to user request"),
            UNAVAILABLE,
            "PostgreSQL cancelled the statement",
        ),
        # Below any client library.
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            UNAVAILABLE,
            "a network connection failed: ConnectionRefusedError: [Errno 111]",
        ),
        (ConnectionResetError(errno.ECONNRESET, "reset"), UNAVAILABLE, "network connection"),
        (socket.gaierror(-2, "Name or service not known"), UNAVAILABLE, "Name or service"),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            UNAVAILABLE,
            "the server's system refused: OSError: [Errno 28] No space left on device",
        ),
        (OSError(errno.EMFILE, "Too many open files"), UNAVAILABLE, "Too many open files"),
        (TimeoutError(), DEADLINE, "did not finish in time (TimeoutError)"),
        # The object store's own errors.
        (
            ObjectStoreUnavailable("local object store /s: cannot store 'k': [Errno 5] EIO"),
            UNAVAILABLE,
            "local object store /s: cannot store 'k': [Errno 5] EIO",
        ),
        (TransientObjectStoreError("S3 SlowDown for 'k'"), UNAVAILABLE, "S3 SlowDown for 'k'"),
        # A group fails as its first failure does.
        (
            ExceptionGroup("fetch", [exc.ConnectionDoesNotExistError("gone"), ValueError()]),
            UNAVAILABLE,
            "lost the connection to PostgreSQL",
        ),
        # Not dependency failures.
        (exc.SerializationError("could not serialize"), ABORTED, "SerializationError"),
        (exc.DeadlockDetectedError("deadlock detected"), ABORTED, "deadlock detected"),
        (exc.UniqueViolationError("duplicate key"), INTERNAL, "internal error"),
        (exc.ProtocolViolationError("bad message"), INTERNAL, "internal error"),
        (
            exc.InterfaceError("cannot perform operation: another operation is in progress"),
            INTERNAL,
            "internal error (InterfaceError)",
        ),
        (ObjectStoreError("cannot store 'a': a/b is an object"), INTERNAL, "internal error"),
        (OSError("Parquet magic bytes not found"), INTERNAL, "internal error (OSError)"),
        (KeyError("bug"), INTERNAL, "internal error (KeyError)"),
    ],
)
def test_each_failure_gets_its_code_and_says_why(
    error: BaseException, code: grpc.StatusCode, said: str
) -> None:
    mapped = map_exception(error)

    assert mapped.code == code
    assert said in mapped.message
    assert mapped.status.code == code.value[0] and mapped.status.message == mapped.message


def test_a_lost_connection_breaks_it_but_a_cancelled_statement_does_not() -> None:
    assert breaks_connection(exc.AdminShutdownError("terminating connection"))
    assert breaks_connection(exc.InternalClientError("cannot switch to state 11"))
    assert breaks_connection(_closed_transaction())
    assert not breaks_connection(exc.QueryCanceledError("canceling statement"))
    assert not breaks_connection(exc.UniqueViolationError("duplicate key"))
    assert not breaks_connection(errors.Unavailable("the object store"))


def test_domain_errors_are_not_reclassified() -> None:
    assert database_failure(errors.Unavailable("x")) is None
    assert database_failure(errors.InvalidArgument("f", "bad")) is None


def test_store_failures_cross_process_boundaries_intact() -> None:
    for error in (ObjectStoreUnavailable("disk full"), TransientObjectStoreError("SlowDown")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert isinstance(copy, errors.Unavailable) and isinstance(copy, ObjectStoreError)
        assert copy.message == error.message
        assert map_exception(copy).code == UNAVAILABLE


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_client_error("AccessDenied", 403), ObjectStoreUnavailable),
        (_client_error("InvalidAccessKeyId", 403), ObjectStoreUnavailable),
        (_client_error("SignatureDoesNotMatch", 403), ObjectStoreUnavailable),
        (_client_error("NoSuchBucket", 404), ObjectStoreUnavailable),
        (_client_error("SlowDown", 503), TransientObjectStoreError),
        (_client_error("InternalError", 500), TransientObjectStoreError),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), TransientObjectStoreError),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:9"), TransientObjectStoreError),
        (NoCredentialsError(), ObjectStoreUnavailable),
        # We sent something S3 or botocore calls malformed: a bug.
        (_client_error("InvalidArgument", 400), ObjectStoreError),
        (ParamValidationError(report="Bucket must be a string"), ObjectStoreError),
    ],
)
def test_s3_failures_become_store_errors_with_their_codes(
    error: Exception, expected: type[Exception]
) -> None:
    translated = _translate_error(error, "cold/k")

    assert type(translated) is expected
    mapped = map_exception(translated)
    if issubclass(expected, ObjectStoreUnavailable):
        assert mapped.code == UNAVAILABLE
        assert mapped.message.startswith("S3 ") and "'cold/k'" in mapped.message
    else:
        assert mapped.code == INTERNAL


# -- the local store on a real file system -----------------------------------------------------


async def _unavailable(call: Any, *said: str) -> None:
    with pytest.raises(ObjectStoreUnavailable) as raised:
        await call
    for part in said:
        assert part in raised.value.message
    assert map_exception(raised.value).code == UNAVAILABLE


async def test_local_store_whose_root_is_a_file_is_unavailable(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    await store.put("cold/a", b"x")
    root.rename(tmp_path / "kept")
    root.write_bytes(b"a file where the root was")

    await _unavailable(store.put("cold/b", b"y"), str(root), "is not a directory")
    # Not "no such object": no object could be found there.
    await _unavailable(store.get("cold/a"), str(root), "is not a directory")
    await _unavailable(store.get_range("cold/a", 0, 1), "is not a directory")
    await _unavailable(store.head("cold/a"), "is not a directory")
    await _unavailable(anext(aiter(store.list("cold/"))), "is not a directory")
    await _unavailable(store.check(), "is not a directory")


async def test_local_store_whose_root_loops_says_so(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    await store.put("cold/a", b"x")
    root.rename(tmp_path / "kept")
    root.symlink_to(root)  # what no process, root included, can walk through

    await _unavailable(store.get("cold/a"), "cannot read 'cold/a'", "Too many levels")
    await _unavailable(store.put("cold/b", b"y"), str(root), "Too many levels")
    await _unavailable(store.delete("cold/a"), "cannot delete 'cold/a'", "Too many levels")


async def test_local_store_file_system_refusal_keeps_the_cause(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    # A name longer than the file system allows: a real OSError, whoever runs this.
    await _unavailable(store.put("cold/" + "n" * 300, b"x"), "cannot store", "File name too long")


async def test_local_store_contents_contradicting_keys_stay_a_bug(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    await store.put("a/b", b"1")

    with pytest.raises(ObjectStoreError) as raised:
        await store.put("a", b"x")
    assert not isinstance(raised.value, ObjectStoreUnavailable)
    assert map_exception(raised.value).code == INTERNAL


async def test_local_store_missing_root_is_an_empty_store(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "not-made-yet")

    with pytest.raises(ObjectNotFound):
        await store.get("cold/a")
    assert [i async for i in store.list("cold/")] == []
