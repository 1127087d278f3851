"""What each interceptor does to a call's method handler: replaces its behavior (the error
mapping also its parsers) and keeps its shape, unary or streamed requests and responses."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc
from grpc import aio

# A call's handler: (request or request iterator, context) -> response, or responses.
Behavior = Callable[[Any, aio.ServicerContext[Any, Any]], Any]


@dataclass(frozen=True)
class Shape:
    kind: str  # the RpcMethodHandler attribute that holds the behavior, e.g. "unary_stream"
    streamed_requests: bool
    streamed_responses: bool
    build: Callable[..., grpc.RpcMethodHandler[Any, Any]]


SHAPES = (
    Shape("unary_unary", False, False, grpc.unary_unary_rpc_method_handler),
    Shape("unary_stream", False, True, grpc.unary_stream_rpc_method_handler),
    Shape("stream_unary", True, False, grpc.stream_unary_rpc_method_handler),
    Shape("stream_stream", True, True, grpc.stream_stream_rpc_method_handler),
)


class Found(NamedTuple):
    """A call's method handler as the server found it, its shape and its behavior."""

    handler: Any  # grpc's RpcMethodHandler
    details: grpc.HandlerCallDetails
    shape: Shape
    behavior: Behavior


class RewrappingInterceptor(aio.ServerInterceptor):
    """Hands each call's method handler, with its shape and behavior, to ``rewrap``."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        # grpc's handler type describes sync behaviors; under grpc.aio they are coroutines.
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return None
        for shape in SHAPES:
            behavior = getattr(handler, shape.kind)
            if behavior is not None:
                return self.rewrap(Found(handler, handler_call_details, shape, behavior))
        return None

    @abstractmethod
    def rewrap(self, found: Found) -> grpc.RpcMethodHandler[Any, Any]:
        """The handler the call runs instead (``shape.build`` of a wrapped ``behavior``)."""
