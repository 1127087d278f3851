"""An Ingest request as the domain takes it: names and request id, and the rows still as sent.

Parsing the rows costs as much as everything else the main process does for a request, so the
main process reads only the header; ``parse`` (supplied by the API layer, which knows the
bytes' format) reads ``data`` in a worker process (``fusou.ingest.prepare``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fusou.ingest.prepare import ParseRows


@dataclass(frozen=True, slots=True)
class IngestRequest:
    dataset_id: str
    table: str
    request_id: str
    data: bytes  # the whole request as sent
    parse: ParseRows  # a top-level function, so it pickles to the worker process
