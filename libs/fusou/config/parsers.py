"""Parsers of variable values: each takes the raw text and returns the value or raises a
ValueError whose message completes "FUSOU_X: ..."."""

from __future__ import annotations

import math
from collections.abc import Callable


def integer(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError(f"must be an integer (got {raw!r})") from None
        if value < low or (high is not None and value > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ValueError(f"must be {bound} (got {value})")
        return value

    return parse


def number(low: float, high: float | None = None) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number (got {raw!r})") from None
        # nan passes every comparison and inf overflows every conversion to an integer.
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number (got {raw!r})")
        if value < low:
            raise ValueError(f"must be at least {low} (got {value})")
        if high is not None and value > high:
            raise ValueError(f"must be at most {high} (got {value})")
        return value

    return parse


def optional_text(raw: str) -> str | None:
    return raw.strip() or None


def database_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if not value.startswith(("postgresql://", "postgres://")):
        raise ValueError("must be a postgresql:// URL")
    return value


def object_store_url(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    if value.startswith("s3://"):
        if not value[len("s3://") :].split("/", 1)[0]:
            raise ValueError("an s3:// URL must name a bucket: s3://bucket/prefix")
        return value
    if value.startswith("file://"):
        if not value[len("file://") :].startswith("/"):
            raise ValueError("a file:// URL must hold an absolute path: file:///path")
        return value
    raise ValueError(f"must be s3://bucket/prefix or file:///path (got {value!r})")


def set_means_on(raw: str) -> str | None:
    # Set but empty (a blank ConfigMap value, a template that rendered nothing) must not turn
    # authentication off: that would open every dataset to everyone.
    if not raw.strip():
        raise ValueError("is set but empty: give a value, or unset it to run without tokens")
    return raw


def optional_port(raw: str) -> int | None:
    if not raw.strip():
        return None
    return integer(1, 65535)(raw)


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false (got {raw!r})")


def choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)} (got {raw!r})")
        return value

    return parse
