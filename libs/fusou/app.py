"""The application: the services FUSOU has, and a server hosting those named over a runtime.

The one module that knows both the server plumbing (``fusou.server``, which receives hosted
services and imports none) and the services (``fusou.services``, each declared once in its
``main.py``). ``fusou serve``, ``fusou up`` and the test harness (``fusou.testing``) build their
server here; nothing in the services or the server imports this module."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fusou.runtime import Runtime
from fusou.server import metrics
from fusou.server.app import FusouServer
from fusou.server.readiness import dependency_check
from fusou.services.spec import ServiceSpec


class _Services(Mapping[str, ServiceSpec[Any]]):
    """Each service's spec (``fusou.services.<name>.main.SERVICE``), imported when first asked
    for: a process hosting the archiver alone does not load the reader's libraries."""

    def __init__(self, names: Sequence[str]) -> None:
        self._names = tuple(names)

    def __getitem__(self, name: str) -> ServiceSpec[Any]:
        if name not in self._names:
            raise KeyError(name)
        spec: ServiceSpec[Any] = importlib.import_module(f"fusou.services.{name}.main").SERVICE
        return spec

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


# By the names ``fusou serve`` accepts, in the order ``fusou up`` hosts them.
SERVICES: Mapping[str, ServiceSpec[Any]] = _Services(("ingest", "archiver", "compactor", "reader"))
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
        # The buffer's gauges and the per-table series scan the catalog: one exporter per
        # deployment is enough, and the archiver (one replica, the buffer's consumer) is the
        # natural one.
        gauges=functools.partial(
            metrics.refresh_catalog, runtime.pool, runtime.settings.server.metrics_table_series
        )
        if "archiver" in names
        else None,
    )
