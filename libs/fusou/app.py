"""The application: the services FUSOU has, and a server hosting those named over a runtime.

The one module that knows both the server plumbing (``fusou.server``, which receives hosted
services and imports none) and the services (``fusou.services``, each declared once in its
``main.py``). ``fusou serve``, ``fusou up`` and the test harness (``fusou.testing``) build their
server here; nothing in the services or the server imports this module."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from fusou.runtime import Runtime
from fusou.server import metrics
from fusou.server.app import FusouServer
from fusou.server.readiness import dependency_check
from fusou.services.archiver.main import SERVICE as ARCHIVER
from fusou.services.compactor.main import SERVICE as COMPACTOR
from fusou.services.ingest.main import SERVICE as INGEST
from fusou.services.reader.main import SERVICE as READER
from fusou.services.spec import ServiceSpec

# By the names ``fusou serve`` accepts, in the order ``fusou up`` hosts them.
SERVICES: Mapping[str, ServiceSpec[Any]] = {
    spec.name: spec for spec in (INGEST, ARCHIVER, COMPACTOR, READER)
}
# Named in the API, implemented by later work.
PLANNED: tuple[str, ...] = ()


def build_server(runtime: Runtime, names: Sequence[str]) -> FusouServer:
    """The services ``names`` over ``runtime``, ready when their dependencies answer."""
    return FusouServer(
        runtime.settings,
        [SERVICES[name].hosted(runtime) for name in names],
        readiness=dependency_check(
            runtime.pool, runtime.store, runtime.settings.server.readiness_timeout_s
        ),
        # The buffer's gauges scan it: one exporter per deployment is enough, and the
        # archiver (one replica, the buffer's consumer) is the natural one.
        gauges=functools.partial(metrics.refresh_buffer, runtime.pool)
        if ARCHIVER.name in names
        else None,
    )
