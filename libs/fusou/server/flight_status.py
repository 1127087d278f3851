"""Errors as Arrow Flight answers them: the status ``map_exception`` gives, carried by the
exception pyarrow turns into that gRPC code.

pyarrow's own error kinds (``FlightError``) carry the message as it is and send their
``extra_info`` as ``grpc-status-details-bin``, so a client finds the same google.rpc.Status
(with BadRequest details) as on the gRPC port. Flight has no such kind for INVALID_ARGUMENT,
NOT_FOUND or UNIMPLEMENTED: those travel as Arrow's ``ArrowInvalid``, ``ArrowKeyError`` and
``ArrowNotImplementedError``, to which pyarrow appends the Python exception (see
``flight_message``).
"""

from __future__ import annotations

import grpc
import pyarrow as pa
from pyarrow import flight

from fusou.server.status import map_exception

_FLIGHT_KINDS: dict[grpc.StatusCode, type[flight.FlightError]] = {
    grpc.StatusCode.UNAUTHENTICATED: flight.FlightUnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: flight.FlightUnauthorizedError,
    grpc.StatusCode.UNAVAILABLE: flight.FlightUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: flight.FlightTimedOutError,
    grpc.StatusCode.CANCELLED: flight.FlightCancelledError,
    grpc.StatusCode.INTERNAL: flight.FlightInternalError,
    # Retry-worthy conflicts and exhaustion: Flight's nearest retryable kind; the message
    # names the original code.
    grpc.StatusCode.ABORTED: flight.FlightUnavailableError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: flight.FlightUnavailableError,
}
_ARROW_KINDS: dict[grpc.StatusCode, type[Exception]] = {
    grpc.StatusCode.INVALID_ARGUMENT: pa.ArrowInvalid,
    grpc.StatusCode.FAILED_PRECONDITION: pa.ArrowInvalid,
    grpc.StatusCode.ALREADY_EXISTS: pa.ArrowInvalid,
    grpc.StatusCode.NOT_FOUND: pa.ArrowKeyError,
    grpc.StatusCode.UNIMPLEMENTED: pa.ArrowNotImplementedError,
}
# Each kind back to its code: the first code that maps to it (ABORTED travels as UNAVAILABLE).
_CODE_OF_KIND: dict[type[Exception], str] = {}
for _code, _kind in [*_FLIGHT_KINDS.items(), *_ARROW_KINDS.items()]:
    _CODE_OF_KIND.setdefault(_kind, _code.name)
# What pyarrow appends to the message of an error it converted from a Python exception.
_PYTHON_DETAIL = ". Detail: Python exception"
_FLIGHT_DETAIL = ". Detail: "
_CLIENT_CONTEXT = ". gRPC client debug context"


def flight_exception(exc: BaseException) -> Exception:
    """The exception a Flight handler raises for ``exc`` (logged there when it is a bug)."""
    mapped = map_exception(exc)
    message = mapped.message
    kind = _FLIGHT_KINDS.get(mapped.code)
    if kind is not None:
        if mapped.code in (grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED):
            message = f"{mapped.code.name}: {message}"
        error: Exception = kind(message, mapped.status.SerializeToString())
        return error
    error = _ARROW_KINDS.get(mapped.code, flight.FlightInternalError)(message)
    return error


def flight_message(exc: BaseException) -> str:
    """The server's message in a Flight client's error, without what pyarrow adds around it
    (the Python exception it converted, the client's debug context)."""
    text = str(exc)
    for marker in (_PYTHON_DETAIL, _CLIENT_CONTEXT, _FLIGHT_DETAIL):
        cut = text.find(marker)
        if cut >= 0:
            text = text[:cut]
    return text


def flight_code(exc: BaseException) -> str:
    """The gRPC code name behind a Flight error (what ``flight_exception`` made of it)."""
    for kind, code in _CODE_OF_KIND.items():
        if isinstance(exc, kind):
            return code
    return "INTERNAL"
