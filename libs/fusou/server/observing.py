"""The outermost interceptor: each call's request id, its log context, its metrics, and a log
line when it ends (WARNING for a failure, DEBUG otherwise).

Outermost, so the codes it sees are those the error mapping gave.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

import grpc
from grpc import aio

from fusou.logs import CURRENT_CALL, REQUEST_ID_HEADER, CallInfo, request_id_of
from fusou.server.handlers import Found, RewrappingInterceptor
from fusou.server.metrics import RPC_SECONDS, RPCS

log = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]


class ObservingInterceptor(RewrappingInterceptor):
    def rewrap(self, found: Found) -> grpc.RpcMethodHandler[Any, Any]:
        handler, details, shape, behavior = found
        wrapped = _observed(behavior, details.method, details.invocation_metadata)
        return shape.build(wrapped, handler.request_deserializer, handler.response_serializer)


async def _begin(context: Context, method: str, metadata: Any) -> None:
    """Runs on the call's own task: what is set here holds for everything the call does."""
    call = CallInfo(request_id_of(metadata), method)
    CURRENT_CALL.set(call)
    started = time.perf_counter()

    def done(_: Any) -> None:
        code = context.code()
        name = (
            code.name if isinstance(code, grpc.StatusCode) else "OK" if code is None else str(code)
        )
        record_call(call, name, time.perf_counter() - started, context.details())

    context.add_done_callback(done)  # type: ignore[arg-type]
    await context.send_initial_metadata(((REQUEST_ID_HEADER, call.request_id),))


def record_call(call: CallInfo, code: str, seconds: float, details: str | None = None) -> None:
    """A finished call into the metrics and the log (a failure at WARNING)."""
    RPCS.labels(call.method, code).inc()
    RPC_SECONDS.labels(call.method).observe(seconds)
    fields = {
        "request_id": call.request_id,
        "method": call.method,
        "principal": call.principal,
        "code": code,
        "duration_ms": round(seconds * 1000, 3),
    }
    if code == "OK":
        log.debug("call finished", extra=fields)
    else:
        log.warning("call failed: %s", details or code, extra=fields)


def _observed(behavior: Any, method: str, metadata: Any) -> Any:
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: Context) -> Any:
            await _begin(context, method, metadata)
            async for response in behavior(request, context):
                yield response

        return stream

    async def call(request: Any, context: Context) -> Any:
        await _begin(context, method, metadata)
        return await behavior(request, context)

    return call
