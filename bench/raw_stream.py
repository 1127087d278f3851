"""The transport floor: how long gRPC alone takes to stream a given number of bytes here.

    python -m bench.raw_stream   (the server; prints its port, then serves until killed)

A generic server-streaming method answers a request "<total bytes> <message bytes>" with
ready-made byte strings, no serialization and no work, between two processes over loopback
like the reader and its client. The read benchmark streams the same bytes as the reader's
answers through it, so that the reader's latency can be told apart from the cost of moving
its answer at all.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from grpc import aio

METHOD = "/bench.RawStream/Stream"
_MB = 1024 * 1024
OPTIONS = [
    ("grpc.max_send_message_length", 256 * _MB),
    ("grpc.max_receive_message_length", 256 * _MB),
]


async def _serve() -> None:
    payloads: dict[int, bytes] = {}

    async def stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        total, size = (int(x) for x in request.split())
        if size not in payloads:
            payloads[size] = os.urandom(size)
        payload = payloads[size]
        sent = 0
        while sent < total:
            chunk = payload if total - sent >= size else payload[: total - sent]
            sent += len(chunk)
            yield chunk

    handler = grpc.method_handlers_generic_handler(
        "bench.RawStream", {"Stream": grpc.unary_stream_rpc_method_handler(stream)}
    )
    server = aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await server.wait_for_termination()


@asynccontextmanager
async def raw_stream_server() -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.raw_stream", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), 60))
        yield f"127.0.0.1:{port}"
    finally:
        proc.kill()
        await proc.wait()


async def stream_seconds(
    channel: aio.Channel, total: int, message: int, repeat: int, warm_up: int = 5
) -> list[float]:
    """Seconds to receive ``total`` bytes in messages of ``message`` bytes, per call, after
    ``warm_up`` untimed calls (flow-control windows grow with use, as on a busy channel)."""
    call: Any = channel.unary_stream(METHOD)
    request = f"{total} {message}".encode()
    out: list[float] = []
    for i in range(warm_up + repeat):
        start = time.perf_counter()
        received = 0
        async for chunk in call(request):
            received += len(chunk)
        if i >= warm_up:
            out.append(time.perf_counter() - start)
        assert received == total
    return out


if __name__ == "__main__":
    asyncio.run(_serve())
