"""The four gRPC services. Each folder holds a thin servicer over domain code in ``fusou``
and the function that hosts it; ``SERVICES`` maps the names ``fusou serve`` accepts to them."""

from __future__ import annotations

from collections.abc import Callable

from fusou.runtime import Runtime
from fusou.server.app import HostedService
from fusou.services.archiver.main import hosted as archiver_hosted
from fusou.services.compactor.main import hosted as compactor_hosted
from fusou.services.ingest.main import hosted as ingest_hosted
from fusou.services.reader.main import hosted as reader_hosted

SERVICES: dict[str, Callable[[Runtime], HostedService]] = {
    "ingest": ingest_hosted,
    "archiver": archiver_hosted,
    "compactor": compactor_hosted,
    "reader": reader_hosted,
}
# Named in the API, implemented by later work.
PLANNED: tuple[str, ...] = ()
