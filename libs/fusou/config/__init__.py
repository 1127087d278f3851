"""Configuration from ``FUSOU_*`` environment variables, validated once at start.

Each variable is declared once, as a field of a settings section (``sections.py``), with its
default, bound and help text; ``VARIABLES`` lists them all, which is what the README's table is
generated from (``scripts/config_table.py``) and checked against.
"""

from fusou.config.errors import ConfigError, read_configured_file
from fusou.config.sections import (
    VARIABLES,
    ArchiveSettings,
    AuthSettings,
    ClientSettings,
    CompactSettings,
    DatabaseSettings,
    IngestSettings,
    LogSettings,
    ReaderSettings,
    RowSettings,
    ServerSettings,
    Settings,
    StoreSettings,
    UploadSettings,
)
from fusou.config.setting import Variable

__all__ = [
    "VARIABLES",
    "ArchiveSettings",
    "AuthSettings",
    "ClientSettings",
    "CompactSettings",
    "ConfigError",
    "DatabaseSettings",
    "IngestSettings",
    "LogSettings",
    "ReaderSettings",
    "RowSettings",
    "ServerSettings",
    "Settings",
    "StoreSettings",
    "UploadSettings",
    "Variable",
    "read_configured_file",
]
