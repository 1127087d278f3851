"""The README is what a new user follows: its commands and its configuration table must hold."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from fusou.config import VARIABLES
from fusou.config.table import markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
CONFIG_TABLE_SCRIPT = ROOT / "scripts" / "config_table.py"


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


def test_the_configuration_table_is_the_one_written_from_the_declarations() -> None:
    spec = importlib.util.spec_from_file_location("fusou_config_table", CONFIG_TABLE_SCRIPT)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    table = markdown_table()
    assert table in README, "run `python scripts/config_table.py` and commit README.md"
    # What the script writes is the README as it is: the table, whole, and nothing else changed.
    assert script.replace_table(README, table) == README
    assert script.replace_table(README.replace(table, table[:-1] + " stale |\n"), table) == README
