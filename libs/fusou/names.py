"""Validation of names that become parts of object keys and SQL identifiers' values."""

from __future__ import annotations

import re

from fusou.errors import InvalidArgument

MAX_NAME_LENGTH = 128
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


def name_problem(value: str, max_length: int = MAX_NAME_LENGTH) -> str | None:
    """Why ``value`` cannot be a dataset or table name, or None when it can."""
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters (got {len(value)})"
    if "/" in value or "\\" in value:
        return "must not contain '/' or '\\'"
    if ".." in value:
        return "must not contain '..'"
    if not _NAME.fullmatch(value):
        return (
            "may contain only letters, digits, '_', '-' and '.', and must not start with '.' or '-'"
        )
    return None


def check_name(field: str, value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise InvalidArgument(field, problem)
    return value
