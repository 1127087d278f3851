"""Hosting CompactorService: ``fusou serve compactor``."""

from __future__ import annotations

from fusou.api.compactor.v1 import compactor_pb2, compactor_pb2_grpc
from fusou.compact.compactor import Compactor
from fusou.runtime import Runtime
from fusou.services.compactor.servicer import CompactorServicer
from fusou.services.spec import ServiceSpec, Serving


def _serving(runtime: Runtime) -> Serving[CompactorServicer]:
    compactor = Compactor(
        runtime.settings, runtime.pool, runtime.store, runtime.registry, clock=runtime.clock
    )
    return Serving(CompactorServicer(compactor), close=compactor.close)


SERVICE = ServiceSpec(
    name="compactor",
    descriptor=compactor_pb2.DESCRIPTOR.services_by_name["CompactorService"],
    add_to_server=compactor_pb2_grpc.add_CompactorServiceServicer_to_server,
    serving=_serving,
)
