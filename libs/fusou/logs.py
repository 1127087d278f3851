"""Logs on standard error, as JSON lines or text, carrying the current call's request id.

A call's request id is the client's ``x-request-id`` metadata when it sends a usable one, or a
new one; it is echoed in the response headers, and every line logged while the call runs (on
its task, or on threads it started with ``asyncio.to_thread``) carries it, with the method and
the token's name.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import re
import sys
import uuid
from dataclasses import dataclass
from typing import IO, Any

REQUEST_ID_HEADER = "x-request-id"
_USABLE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


@dataclass
class CallInfo:
    request_id: str
    method: str
    principal: str | None = None


CURRENT_CALL: contextvars.ContextVar[CallInfo | None] = contextvars.ContextVar(
    "fusou_current_call", default=None
)


def request_id_of(metadata: Any) -> str:
    """The client's request id when it is 1 to 128 characters of ``[A-Za-z0-9._:-]``, else a
    new one (a client's id goes into logs verbatim, so it must not be able to forge lines)."""
    for key, value in metadata or ():
        if key == REQUEST_ID_HEADER:
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            if _USABLE_REQUEST_ID.fullmatch(text):
                return str(text)
            break
    return uuid.uuid4().hex


# What every LogRecord holds; anything else on a record came from ``extra=`` and is logged.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
}
_CALL_FIELDS = ("request_id", "method", "principal")


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What ``extra=`` and ``CallFields`` put on a record, without the unset ones."""
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and value is not None and not key.startswith("_")
    }


class CallFields(logging.Filter):
    """Adds the current call's fields to records that do not carry them already."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = CURRENT_CALL.get()
        if call is not None:
            for name in _CALL_FIELDS:
                if getattr(record, name, None) is None:
                    setattr(record, name, getattr(call, name))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message, the call's fields, any
    ``extra=`` fields, and the exception with its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        out.update(_extra_fields(record))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        if record.stack_info:
            out["stack"] = record.stack_info
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic line, with ``extra=`` and call fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [f"{key}={value}" for key, value in _extra_fields(record).items()]
        if not extras:
            return line
        head, sep, rest = line.partition("\n")
        return f"{head} [{' '.join(extras)}]{sep}{rest}"


def configure(level: str, fmt: str, stream: IO[str] | None = None) -> None:
    """Route the root logger to ``stream`` (standard error) in the format asked for (``auto``:
    text on a terminal, JSON otherwise)."""
    out = sys.stderr if stream is None else stream
    if fmt == "auto":
        fmt = "text" if out.isatty() else "json"
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(CallFields())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
