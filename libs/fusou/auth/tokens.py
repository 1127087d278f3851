"""Bearer tokens: how they are made, and how they are configured and looked up.

The configuration holds only each token's SHA-256, never the token, so it may sit in a
ConfigMap; the token itself is a 256-bit random string, which no one can find from its hash.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from fusou.config import ConfigError, Settings, read_configured_file
from fusou.names import name_problem

TOKEN_PREFIX = "fusou_"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_KEYS = frozenset({"name", "sha256", "role", "datasets"})


class Role(StrEnum):
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


@dataclass(frozen=True)
class TokenEntry:
    """One configured token: who it is (for logs), its roles and the datasets it may touch."""

    name: str
    sha256: str
    roles: frozenset[Role]
    # Dataset names, "prefix*" patterns, or "*" for every dataset.
    datasets: tuple[str, ...]

    @property
    def all_datasets(self) -> bool:
        return "*" in self.datasets

    def may_touch(self, dataset: str) -> bool:
        for allowed in self.datasets:
            if allowed.endswith("*"):
                if dataset.startswith(allowed[:-1]):
                    return True
            elif dataset == allowed:
                return True
        return False

    def describe(self) -> dict[str, Any]:
        """The entry as it is configured (what ``entry_from_json`` reads back)."""
        roles = sorted(r.value for r in self.roles)
        return {
            "name": self.name,
            "sha256": self.sha256,
            "role": roles[0] if len(roles) == 1 else roles,
            "datasets": list(self.datasets),
        }


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _roles(raw: Any) -> frozenset[Role]:
    values = [raw] if isinstance(raw, str) else raw
    if not isinstance(values, list) or not values:
        raise ValueError("role must be one of ingest, read, admin, or a list of them")
    try:
        return frozenset(Role(v) for v in values)
    except ValueError:
        raise ValueError(
            f"role must be one of ingest, read, admin, or a list of them (got {raw!r})"
        ) from None


def _datasets(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(d, str) for d in raw):
        raise ValueError('datasets must be a non-empty list of names, "prefix*" or "*"')
    for pattern in raw:
        if pattern == "*":
            continue
        name = pattern[:-1] if pattern.endswith("*") else pattern
        problem = name_problem(name)
        if problem is not None:
            raise ValueError(f"datasets: {pattern!r} {problem}")
    return tuple(raw)


def entry_from_json(raw: Any) -> TokenEntry:
    if not isinstance(raw, dict):
        raise ValueError("each token must be an object {name, sha256, role, datasets}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ValueError(
            f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}"
        )
    missing = sorted(_KEYS - set(raw))
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    name, digest = raw["name"], raw["sha256"]
    if not isinstance(name, str) or not name.strip():
        raise ValueError("name must be a non-empty string")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
        raise ValueError("sha256 must be 64 hexadecimal digits (the token's SHA-256)")
    return TokenEntry(name, digest.lower(), _roles(raw["role"]), _datasets(raw["datasets"]))


def parse_entries(text: str, source: str) -> list[TokenEntry]:
    """The tokens of one JSON list; a ConfigError names ``source`` and the entry at fault."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: must be a JSON list of tokens")
    entries = []
    for index, item in enumerate(raw):
        try:
            entries.append(entry_from_json(item))
        except ValueError as exc:
            raise ConfigError(f"{source}: token {index}: {exc}") from None
    return entries


def by_hash(entries: Iterable[TokenEntry]) -> dict[str, TokenEntry]:
    found: dict[str, TokenEntry] = {}
    for entry in entries:
        if entry.sha256 in found:
            raise ConfigError(
                f"tokens {found[entry.sha256].name!r} and {entry.name!r} have the same sha256"
            )
        found[entry.sha256] = entry
    return found


def configured_tokens(settings: Settings) -> Mapping[str, TokenEntry] | None:
    """The configured tokens by hash, or None when none are configured (the services run open).

    An empty list is a configuration too: every call is then refused.
    """
    if settings.auth.tokens is None and settings.auth.tokens_file is None:
        return None
    entries: list[TokenEntry] = []
    if settings.auth.tokens is not None:
        entries += parse_entries(settings.auth.tokens, "FUSOU_AUTH_TOKENS")
    if settings.auth.tokens_file is not None:
        text = read_configured_file("FUSOU_AUTH_TOKENS_FILE", settings.auth.tokens_file).decode()
        entries += parse_entries(text, f"FUSOU_AUTH_TOKENS_FILE {settings.auth.tokens_file}")
    return by_hash(entries)
