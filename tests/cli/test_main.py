"""What every ``fusou`` command shares: its version, and a reader that stops early."""

from __future__ import annotations

import json
import shlex
from collections.abc import AsyncIterator
from importlib import metadata
from pathlib import Path

import pytest

from fusou.cli.main import EXIT_BROKEN_PIPE
from fusou.config import Settings
from fusou.testing import ServicesUnderTest, running_services
from tests.support.grpcurl import FUSOU, arun, run

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


def test_version_is_the_installed_package_version() -> None:
    result = run([FUSOU, "--version"])
    assert result.returncode == 0, result.explain()
    assert result.stdout == f"fusou {metadata.version('fusou')}\n", result.explain()


@pytest.fixture
async def system(settings: Settings) -> AsyncIterator[ServicesUnderTest]:
    async with running_services(settings, ["ingest", "reader"]) as s:
        yield s


async def test_a_reader_that_stops_early_ends_the_command_quietly(
    system: ServicesUnderTest, tmp_path: Path
) -> None:
    """`fusou read ... | head`: the pipe closes while rows are still coming; the command stops
    without a traceback, with the status the shell gives programs a closed pipe stops."""
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"timestamp": T0 + i, "v": i, "s": "x" * 40}) + "\n" for i in range(20_000)
        )
    )
    sent = await arun(
        [FUSOU, "ingest", "pipe", "battle", str(rows), "--target", system.target, "--quiet"],
        time_limit=120,
    )
    assert sent.returncode == 0, sent.explain()
    # 20,000 rows of about 80 bytes: far more than a pipe holds once `head` is gone.
    errors = tmp_path / "stderr"
    span = ["--from", str(T0), "--to", str(T0 + 20_000)]
    read = shlex.join(
        [
            *(FUSOU, "read", "pipe", "battle", *span, "--target", system.target, "--quiet"),
            *("--flight-target", system.flight_target),
        ]
    )
    script = f'{read} 2>{shlex.quote(str(errors))} | head -n 1; echo "status=${{PIPESTATUS[0]}}"'
    result = await arun(["bash", "-c", script], time_limit=120)
    assert result.returncode == 0, result.explain()
    first, status = result.stdout.splitlines()
    assert first.startswith(f'{{"timestamp":{T0},'), result.explain()
    stderr = errors.read_text()
    assert (status, stderr) == (f"status={EXIT_BROKEN_PIPE}", ""), stderr
