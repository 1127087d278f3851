"""The README's table of variables, rendered from their declarations."""

from __future__ import annotations

from typing import Any

from fusou.config.sections import VARIABLES, MiB
from fusou.config.setting import Variable

HEADER = "| variable | default | meaning |\n| --- | --- | --- |\n"


def shown_default(var: Variable) -> str:
    value: Any = var.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int) and var.field.endswith("bytes") and value % MiB == 0:
        return f"{value // MiB} MiB"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def markdown_table() -> str:
    """The header and one row per variable, in declaration order (grouped by section)."""
    rows = (f"| `{var.env}` | {shown_default(var)} | {var.help} |\n" for var in VARIABLES)
    return HEADER + "".join(rows)
