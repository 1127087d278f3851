"""What a publication run reports."""

from __future__ import annotations

from dataclasses import dataclass, field


class LakeUnpublished(Exception):
    """A run's publication failed; what it moved stays moved, and the next run publishes it."""


@dataclass
class TablePublication:
    dataset_id: str
    table: str
    days_written: int = 0
    days_removed: int = 0
    rows_written: int = 0
    committed: bool = False
    error: str = ""


@dataclass
class LakeReport:
    tables: list[TablePublication] = field(default_factory=list)
    files_deleted: int = 0
    cleanup_error: str = ""

    @property
    def published(self) -> int:
        return sum(t.committed for t in self.tables)

    @property
    def failed(self) -> int:
        return sum(bool(t.error) for t in self.tables)

    @property
    def error(self) -> str:
        """The first problem, for a run's answer ("" when there was none)."""
        for t in self.tables:
            if t.error:
                return f"{t.dataset_id}/{t.table}: {t.error}"
        return self.cleanup_error
