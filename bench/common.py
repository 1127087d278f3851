"""Shared pieces of the benchmarks: synthetic battle records, a database, a server process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from fusou.testing import PostgresForTests

T0 = 1_700_000_000_000
SHIPS = ["yamato", "musashi", "nagato", "mutsu", "akagi", "kaga", "shoukaku", "zuikaku"]


def battle_rows(n: int, seed: int = 1, start: int = T0, step_ms: int = 86) -> list[dict[str, Any]]:
    """Synthetic battle records of roughly 400 bytes of JSON each."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "timestamp": start + i * step_ms,
                "api_no": i,
                "map_area": rng.randint(1, 7),
                "map_no": rng.randint(1, 6),
                "cell": rng.randint(1, 20),
                "rank": rng.choice(["S", "A", "B", "C", "D"]),
                "flagship": rng.choice(SHIPS),
                "enemy_fleet": f"fleet-{rng.randint(1, 500)}",
                "hp_before": rng.randint(1, 100),
                "hp_after": rng.randint(0, 100),
                "damage_dealt": rng.randint(0, 20_000),
                "damage_taken": rng.randint(0, 5_000),
                "air_superiority": rng.choice(["AS+", "AS", "AP", "AD", "AI"]),
                "formation": rng.randint(1, 6),
                "night_battle": rng.random() < 0.3,
                "drop_ship": rng.choice([None, *SHIPS]),
                "fuel": round(rng.random() * 100, 2),
                "ammo": round(rng.random() * 100, 2),
                "comment": "x" * rng.randint(10, 60),
            }
        )
    return rows


@dataclass
class Rate:
    label: str
    rows: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


@asynccontextmanager
async def bench_database() -> AsyncIterator[tuple[PostgresForTests, str]]:
    """A fresh migrated database on FUSOU_TEST_DATABASE_URL's server, or an embedded one."""
    pg = PostgresForTests()
    await pg.start()
    try:
        url = await pg.create_database()
        yield pg, url
    finally:
        await pg.stop()


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


@dataclass
class CpuMeter:
    """CPU seconds spent by the server process, its worker processes and PostgreSQL."""

    server_pid: int | None = None

    def sample(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.server_pid is not None:
            server = psutil.Process(self.server_pid)
            out["server"] = _cpu_seconds([server])
            out["workers"] = _cpu_seconds(server.children(recursive=True))
        postgres = [
            p
            for p in psutil.process_iter(["name"])
            if (p.info["name"] or "").startswith("postgres")
        ]
        out["postgres"] = _cpu_seconds(postgres)
        return out

    @staticmethod
    def per_row(before: dict[str, float], after: dict[str, float], rows: int) -> str:
        parts = [f"{k} {(after[k] - before[k]) / rows * 1e6:.1f}" for k in before]
        return "CPU us/row: " + ", ".join(parts)


@dataclass
class ServerProcess:
    target: str
    pid: int
    # The reader's Arrow Flight host:port (None unless the process serves the reader).
    flight_target: str | None = None


@asynccontextmanager
async def server_process(
    database_url: str,
    services: str = "ingest",
    *,
    store_dir: Path | None = None,
    store_url: str | None = None,
    **extra_env: str,
) -> AsyncIterator[ServerProcess]:
    """`fusou serve` in its own process (so clients and server do not share a GIL).

    Its object store is a private temporary directory, or ``store_dir`` when several processes
    must see the same objects, or ``store_url`` (an ``s3://`` one); ``extra_env`` adds or
    overrides ``FUSOU_*`` variables.
    """
    with contextlib.ExitStack() as cleanup:
        if store_dir is None:
            store_dir = Path(
                cleanup.enter_context(tempfile.TemporaryDirectory(prefix="fusou-bench-"))
            )
        env = dict(os.environ)
        env.update(
            FUSOU_DATABASE_URL=database_url,
            FUSOU_OBJECT_STORE_URL=store_url or f"file://{store_dir}",
            FUSOU_GRPC_PORT="0",
            FUSOU_FLIGHT_PORT="0",
            FUSOU_METRICS_PORT="0",
            FUSOU_GRPC_HOST="127.0.0.1",
            FUSOU_LOG_LEVEL="warning",
        )
        env.update(extra_env)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fusou.cli.main",
            "serve",
            *services.split(),
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode()
            if "listening on port" not in line:
                raise RuntimeError(f"server did not start: {line!r}")
            flight = None
            if "reader" in services.split():
                # `fusou serve` announces the Flight port on the next line.
                announced = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
                flight = f"127.0.0.1:{int(announced.rsplit(' ', 1)[1])}"
            yield ServerProcess(f"127.0.0.1:{int(line.rsplit(' ', 1)[1])}", proc.pid, flight)
        finally:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()


class Stopwatch:
    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
