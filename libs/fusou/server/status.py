"""The one place where errors become gRPC statuses.

Domain errors map to their codes; google.rpc.BadRequest details name the offending fields so a
client (or grpcurl) sees which field was wrong. Anything unexpected becomes INTERNAL with a log
line, never UNKNOWN.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from fusou import errors
from fusou.objectstore.base import ObjectStoreError, TransientObjectStoreError

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
    (TransientObjectStoreError, grpc.StatusCode.UNAVAILABLE),
    (asyncio.TimeoutError, grpc.StatusCode.DEADLINE_EXCEEDED),
    # A lost or refused database connection: the client may retry.
    (asyncpg.exceptions.ConnectionDoesNotExistError, grpc.StatusCode.UNAVAILABLE),
    (asyncpg.exceptions.CannotConnectNowError, grpc.StatusCode.UNAVAILABLE),
    (asyncpg.exceptions.TooManyConnectionsError, grpc.StatusCode.UNAVAILABLE),
    (asyncpg.exceptions.SerializationError, grpc.StatusCode.ABORTED),
    (asyncpg.exceptions.DeadlockDetectedError, grpc.StatusCode.ABORTED),
    (asyncpg.exceptions.LockNotAvailableError, grpc.StatusCode.ABORTED),
    (ConnectionError, grpc.StatusCode.UNAVAILABLE),
    (NotImplementedError, grpc.StatusCode.UNIMPLEMENTED),
    (ObjectStoreError, grpc.StatusCode.INTERNAL),
)


@dataclass(frozen=True)
class MappedError:
    code: grpc.StatusCode
    message: str
    status: status_pb2.Status

    @property
    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return (("grpc-status-details-bin", self.status.SerializeToString()),)


def map_exception(exc: BaseException) -> MappedError:
    code = grpc.StatusCode.INTERNAL
    for kind, mapped in _CODES:
        if isinstance(exc, kind):
            code = mapped
            break
    if isinstance(exc, errors.FusouError):
        message = exc.message
    elif code is grpc.StatusCode.UNIMPLEMENTED:
        message = str(exc) or "not implemented yet"
    elif code is grpc.StatusCode.INTERNAL:
        log.error("unexpected error", exc_info=exc)
        message = f"internal error ({type(exc).__name__})"
    else:
        message = f"{type(exc).__name__}: {exc}"
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
