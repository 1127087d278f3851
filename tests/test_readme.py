"""The README is what a new user follows: its commands and its configuration table must hold."""

from __future__ import annotations

import re
from pathlib import Path

from fusou.config import VARIABLES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_readme_opens_with_the_run_and_test_commands() -> None:
    first_block = README.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()[1:] if line.strip()]
    assert commands == ["./scripts/up", "./scripts/test"]
    for command in commands:
        script = ROOT / command
        assert script.is_file() and script.stat().st_mode & 0o111, f"{command} is not executable"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test" in ci


def test_every_variable_is_in_the_configuration_table() -> None:
    documented = set(re.findall(r"^\| `(FUSOU_[A-Z0-9_]+)` \|", README, flags=re.MULTILINE))
    assert documented == {v.env for v in VARIABLES}
