"""Every outcome the Archiver and the Compactor report has a status on the wire."""

from __future__ import annotations

from fusou.api.archiver.translate import _STATUS as ARCHIVE_STATUS
from fusou.api.compactor.translate import _STATUS as COMPACT_STATUS
from fusou.archive.archiver import TableStatus
from fusou.compact.compactor import Status


def test_each_domain_status_has_its_own_wire_status() -> None:
    for statuses, domain in ((ARCHIVE_STATUS, TableStatus), (COMPACT_STATUS, Status)):
        assert set(statuses) == set(domain)
        assert len(set(statuses.values())) == len(statuses) and 0 not in statuses.values()
