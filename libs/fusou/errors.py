"""Domain errors.

Domain code raises these; the server's error interceptor is the one place that turns them into
gRPC status codes (see ``fusou.server.status``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


class FusouError(Exception):
    """Base class of every error a client may see."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross process boundaries (the CPU worker pool); keep their exact contents.
        return (_rebuild, (type(self), self.message, getattr(self, "violations", None)))


def _rebuild(
    cls: type[FusouError], message: str, violations: tuple[FieldViolation, ...] | None
) -> FusouError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.message = message
    if violations is not None:
        err.violations = violations  # type: ignore[attr-defined]
    return err


# The status, its message and its BadRequest details travel in trailing metadata, which gRPC
# clients refuse past 8 KiB (the call then fails with RESOURCE_EXHAUSTED and no field named):
# a field name or description echoing a huge input, or thousands of violations, must not get
# there whole. In UTF-8 bytes; base64 and percent-encoding grow them on the way.
MAX_FIELD_BYTES = 160
MAX_DESCRIPTION_BYTES = 320
MAX_VIOLATIONS = 8


def _clip(text: str, limit: int) -> str:
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - 3].decode(errors="ignore") + "…"


class InvalidArgument(FusouError):
    """Bad input: the request changed nothing."""

    def __init__(self, field: str, description: str) -> None:
        field = _clip(field, MAX_FIELD_BYTES)
        description = _clip(description, MAX_DESCRIPTION_BYTES)
        super().__init__(f"{field}: {description}" if field else description)
        self.violations: tuple[FieldViolation, ...] = (FieldViolation(field, description),)

    @classmethod
    def many(cls, violations: list[FieldViolation]) -> InvalidArgument:
        """The first violations; the message counts those left out."""
        first = violations[0]
        err = cls(first.field, first.description)
        err.violations = tuple(
            FieldViolation(
                _clip(v.field, MAX_FIELD_BYTES), _clip(v.description, MAX_DESCRIPTION_BYTES)
            )
            for v in violations[:MAX_VIOLATIONS]
        )
        left_out = len(violations) - MAX_VIOLATIONS
        if left_out > 0:
            err.message += f" (and {left_out} more problems)"
            err.args = (err.message,)
        return err


class NotFound(FusouError):
    pass


class AlreadyExists(FusouError):
    pass


class FailedPrecondition(FusouError):
    pass


class Aborted(FusouError):
    """A concurrent operation holds what this one needs; retrying later is safe."""


class ResourceExhausted(FusouError):
    pass


class Unavailable(FusouError):
    """A dependency (PostgreSQL, the object store) cannot be reached; retrying is safe."""


class DeadlineExceeded(FusouError):
    pass


class Unauthenticated(FusouError):
    """The call carries no bearer token, or one the server does not know."""


class PermissionDenied(FusouError):
    """The token may not call this RPC, or not for this dataset."""


class DatasetPurging(FailedPrecondition):
    """The dataset is being purged: nothing new is written to it until the purge is done."""

    def __init__(self, dataset_id: str) -> None:
        super().__init__(
            f"dataset {dataset_id!r} is being purged: nothing is written to it until the purge "
            "completes (an interrupted purge is completed by calling PurgeDataset again)"
        )


class TableGone(Aborted):
    """A table named by cached catalog data no longer exists (its dataset was purged); the
    caller reloads the catalog and tries again."""
