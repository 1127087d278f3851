"""A second S3 implementation for the benchmarks (s3rver, from the npm registry) and a proxy
in front of it that holds every request for a fixed delay, as a distant object store would.

    python -m bench.s3_server proxy UPSTREAM DELAY_MS   (prints its port, serves until killed)

s3rver keeps objects as files and serves ranged GETs and multipart uploads. It does not decode
the ``aws-chunked`` bodies the AWS C++ SDK sends, so objects are written through boto3.
The proxy runs in its own process: the delay is the only thing it adds to the reader's and
the peer's requests alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

S3RVER_VERSION = "3.7.1"
ACCESS_KEY = SECRET_KEY = "S3RVER"  # s3rver's own
REGION = "us-east-1"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "proxy-connection"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _s3rver_script() -> Path:
    """s3rver's entry point, installed with npm into a cache directory on first use."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fusou-bench"
    script = cache / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    if not script.exists():
        if shutil.which("npm") is None:
            raise SystemExit("the S3 benchmark needs Node.js and npm (for s3rver)")
        cache.mkdir(parents=True, exist_ok=True)
        print(f"installing s3rver {S3RVER_VERSION} into {cache} ...", file=sys.stderr)
        subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", f"s3rver@{S3RVER_VERSION}"],
            cwd=cache,
            check=True,
        )
    return script


@contextlib.contextmanager
def s3rver(data_dir: Path) -> Iterator[str]:
    """s3rver on a free port, storing under ``data_dir`` (its log beside it, s3rver.log);
    yields its endpoint URL."""
    port = _free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir.parent / "s3rver.log").open("wb")
    proc = subprocess.Popen(
        [
            *("node", str(_s3rver_script()), "-d", str(data_dir)),
            *("-a", "127.0.0.1", "-p", str(port), "--allow-mismatched-signatures"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        # s3rver seals continuation tokens with a cipher OpenSSL 3 keeps in its legacy provider.
        env={**os.environ, "NODE_OPTIONS": "--openssl-legacy-provider"},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("s3rver did not start")
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    except BaseException:
        log.flush()
        tail = (data_dir.parent / "s3rver.log").read_text(errors="replace").splitlines()[-40:]
        print("s3rver's last lines:\n" + "\n".join(tail), file=sys.stderr)
        raise
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@asynccontextmanager
async def delay_proxy(upstream: str, delay_ms: float) -> AsyncIterator[str]:
    """The proxy (``python -m bench.s3_server proxy``) in its own process; yields its URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.s3_server",
        "proxy",
        upstream,
        str(delay_ms),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        proc.terminate()
        await proc.wait()


async def _proxy(upstream: str, delay_ms: float) -> None:
    from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

    delay = delay_ms / 1000
    session = ClientSession(
        connector=TCPConnector(limit=0), timeout=ClientTimeout(total=None), auto_decompress=False
    )

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        await asyncio.sleep(delay)  # one fixed delay per request, as a distant store adds
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with session.request(
            request.method,
            upstream + request.rel_url.raw_path_qs,
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as answer:
            response = web.StreamResponse(status=answer.status)
            for key, value in answer.headers.items():
                if key.lower() not in _HOP_BY_HOP and key.lower() != "content-length":
                    response.headers[key] = value
            if answer.content_length is not None:
                response.content_length = answer.content_length
            await response.prepare(request)
            async for chunk in answer.content.iter_chunked(1 << 20):
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    print(sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "proxy":
        raise SystemExit(__doc__)
    asyncio.run(_proxy(sys.argv[2], float(sys.argv[3])))
