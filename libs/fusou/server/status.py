"""The one place where errors become gRPC statuses.

Domain errors map to their codes; google.rpc.BadRequest details name the offending fields so a
client (or grpcurl) sees which field was wrong. Anything unexpected becomes INTERNAL with a log
line, never UNKNOWN.

A dependency failing is not unexpected: PostgreSQL lost or refusing (classified by
``fusou.db.failures``), the object store failing (its backends raise ``Unavailable`` with the
cause), the network or the operating system refusing. Those answer UNAVAILABLE (or
DEADLINE_EXCEEDED for a timeout) with the cause in the message, so a client knows it may retry
and an operator reads what broke; INTERNAL is kept for bugs.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from fusou import errors
from fusou.db.failures import database_failure
from fusou.objectstore.base import ObjectStoreError

log = logging.getLogger(__name__)

_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Aborted, grpc.StatusCode.ABORTED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.DeadlineExceeded, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (asyncpg.exceptions.SerializationError, grpc.StatusCode.ABORTED),
    (asyncpg.exceptions.DeadlockDetectedError, grpc.StatusCode.ABORTED),
    (asyncpg.exceptions.LockNotAvailableError, grpc.StatusCode.ABORTED),
    (NotImplementedError, grpc.StatusCode.UNIMPLEMENTED),
    # What remains of the store's errors is a bug or corrupt contents (a key colliding with a
    # directory, a request S3 calls malformed); its failures to work are Unavailable above.
    (ObjectStoreError, grpc.StatusCode.INTERNAL),
)
# Where a network call failed below any client library: the peer is gone or unknown.
_NETWORK = (ConnectionError, socket.gaierror, socket.herror)


def dependency_failure(exc: BaseException) -> errors.FusouError | None:
    """The domain error of ``exc`` when it is a dependency failing rather than a bug: the
    database (see ``fusou.db.failures``), the network, the operating system refusing (a full
    disk, no file descriptors, an I/O error), or a timeout. None otherwise."""
    found = database_failure(exc)
    if found is not None:
        return found
    if isinstance(exc, TimeoutError):
        return errors.DeadlineExceeded(f"did not finish in time ({_describe(exc)})")
    if isinstance(exc, _NETWORK):
        return errors.Unavailable(f"a network connection failed: {_describe(exc)}")
    if isinstance(exc, OSError) and exc.errno is not None:
        # The operating system refused the work; errno-less OSErrors are libraries' parse
        # errors (pyarrow raises them for a corrupt file) and stay bugs.
        return errors.Unavailable(f"the server's system refused: {_describe(exc)}")
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _decisive(exc: BaseException) -> BaseException:
    """The exception whose kind decides the answer: the domain error a dependency failure
    stands for, the first failure of a group (a task group's siblings fail with it or are
    cancelled because of it), else ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, errors.FusouError):
        return exc
    return dependency_failure(exc) or exc


@dataclass(frozen=True)
class MappedError:
    code: grpc.StatusCode
    message: str
    status: status_pb2.Status

    @property
    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return (("grpc-status-details-bin", self.status.SerializeToString()),)


def map_exception(exc: BaseException) -> MappedError:
    original, exc = exc, _decisive(exc)
    code = grpc.StatusCode.INTERNAL
    for kind, mapped in _CODES:
        if isinstance(exc, kind):
            code = mapped
            break
    if isinstance(exc, errors.FusouError):
        message = exc.message
        if exc is not original:
            # The message carries the cause; the traceback says where it was met.
            log.debug("%s: %s", code.name, message, exc_info=original)
    elif code is grpc.StatusCode.UNIMPLEMENTED:
        message = str(exc) or "not implemented yet"
    elif code is grpc.StatusCode.INTERNAL:
        log.error("unexpected error", exc_info=original)
        message = f"internal error ({type(exc).__name__})"
    else:
        message = _describe(exc)
    status = status_pb2.Status(code=_rpc_code(code), message=message)
    if isinstance(exc, errors.InvalidArgument):
        detail = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in exc.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return MappedError(code, message, status)


def _rpc_code(code: grpc.StatusCode) -> int:
    value = code.value[0]
    assert isinstance(value, int)
    return value


def bad_request_fields(status: status_pb2.Status) -> list[str]:
    """The field names in a status's BadRequest details (used by clients and tests)."""
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            fields.extend(v.field for v in br.field_violations)
    return fields


__all__ = ["MappedError", "bad_request_fields", "code_pb2", "map_exception"]
