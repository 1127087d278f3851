"""What a bad configuration raises."""

from __future__ import annotations


class ConfigError(Exception):
    """One or more variables are invalid; the message names each of them."""


def read_configured_file(variable: str, path: str) -> bytes:
    """The bytes of the file ``variable`` names; a ConfigError names the variable and path."""
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path} ({exc})") from None
