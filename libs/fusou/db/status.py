"""What PostgreSQL's command status says (``asyncpg``'s ``execute`` returns it as text)."""

from __future__ import annotations


def rows_affected(status: str) -> int:
    """The row count of a command status: 12 for "DELETE 12", 3 for "INSERT 0 3"."""
    return int(status.rsplit(" ", 1)[-1])
