"""The outermost interceptor: each call's request id, its log context, its metrics, and a log
line when it ends (WARNING for a failure, DEBUG otherwise).

Outermost, so the codes it sees are those the error mapping gave.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from fusou.logs import CURRENT_CALL, REQUEST_ID_HEADER, CallInfo, request_id_of
from fusou.server.metrics import RPC_SECONDS, RPCS

log = logging.getLogger(__name__)

Context = aio.ServicerContext[Any, Any]

_BUILDERS: dict[str, Any] = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}


class ObservingInterceptor(aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        metadata = handler_call_details.invocation_metadata
        for kind, build in _BUILDERS.items():
            behavior = getattr(handler, kind)
            if behavior is not None:
                wrapped = _observed(behavior, method, metadata)
                observed: grpc.RpcMethodHandler[Any, Any] = build(
                    wrapped, handler.request_deserializer, handler.response_serializer
                )
                return observed
        return None


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
        seconds = time.perf_counter() - started
        RPCS.labels(method, name).inc()
        RPC_SECONDS.labels(method).observe(seconds)
        fields = {
            "request_id": call.request_id,
            "method": method,
            "principal": call.principal,
            "code": name,
            "duration_ms": round(seconds * 1000, 3),
        }
        if name == "OK":
            log.debug("call finished", extra=fields)
        else:
            log.warning("call failed: %s", context.details() or name, extra=fields)

    context.add_done_callback(done)  # type: ignore[arg-type]
    await context.send_initial_metadata(((REQUEST_ID_HEADER, call.request_id),))


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
