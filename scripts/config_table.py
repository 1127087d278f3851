#!/usr/bin/env python3
"""Write the README's table of ``FUSOU_*`` variables from their declarations in fusou.config.

    scripts/config_table.py          # rewrite the table in README.md
    scripts/config_table.py --print  # print it instead

tests/test_readme.py fails when the README's table is not what this writes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fusou.config.table import HEADER, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"


def replace_table(readme: str, table: str) -> str:
    """``readme`` with the table that starts at HEADER (and ends at the first line that is not a
    table row) replaced by ``table``."""
    start = readme.index(HEADER)
    end = start + len(HEADER)
    while readme.startswith("|", end):
        end = readme.index("\n", end) + 1
    return readme[:start] + table + readme[end:]


def main(argv: list[str]) -> int:
    if "--print" in argv:
        sys.stdout.write(markdown_table())
        return 0
    README.write_text(replace_table(README.read_text(), markdown_table()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
