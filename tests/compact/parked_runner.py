"""``python -m tests.compact.parked_runner DATASET``: a compaction runner in a process of its
own (configured by FUSOU_* variables) that claims DATASET, parks at the "read" step with one
line on standard output (``parked <runner id>``) and stays there until it is killed."""

from __future__ import annotations

import asyncio
import sys

from fusou.compact.compactor import CompactOptions, Compactor
from fusou.config import Settings
from fusou.runtime import open_runtime


async def main(dataset_id: str) -> None:
    settings = Settings.from_env()
    runtime = await open_runtime(settings)
    compactor: Compactor

    async def park(point: str) -> None:
        if point == "read":
            print(f"parked {compactor.runner_id}", flush=True)
            await asyncio.Event().wait()

    compactor = Compactor(settings, runtime.pool, runtime.store, runtime.registry, park)
    await compactor.compact(CompactOptions(dataset_id=dataset_id))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
