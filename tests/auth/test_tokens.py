"""Token configuration: what is accepted, what is refused with a message naming the variable
and the entry, and ``fusou token``, whose output configures a token that works."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fusou.api.access import AccessControl
from fusou.auth.tokens import (
    Role,
    configured_tokens,
    entry_from_json,
    hash_token,
    new_token,
    parse_entries,
)
from fusou.config import ConfigError, Settings

DIGEST = hash_token("t")


def entry(**changes: object) -> dict[str, object]:
    return {"name": "n", "sha256": DIGEST, "role": "read", "datasets": ["demo"], **changes}


def test_an_entry_is_read_with_its_roles_and_datasets() -> None:
    e = entry_from_json(entry(role=["ingest", "read"], datasets=["demo", "team-*"]))
    assert e.roles == {Role.INGEST, Role.READ}
    assert e.may_touch("demo") and e.may_touch("team-a") and e.may_touch("team-")
    assert not e.may_touch("demo2") and not e.may_touch("team") and not e.all_datasets
    assert entry_from_json(entry(datasets=["*"])).all_datasets
    assert entry_from_json(entry(sha256=DIGEST.upper())).sha256 == DIGEST
    assert entry_from_json(e.describe()) == e


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (entry(role="writer"), "role must be one of"),
        (entry(role=[]), "role must be one of"),
        (entry(datasets=[]), "datasets must be a non-empty list"),
        (entry(datasets="demo"), "datasets must be a non-empty list"),
        (entry(datasets=["../x"]), "'../x'"),
        (entry(sha256="abc"), "sha256 must be 64 hexadecimal digits"),
        (entry(name=""), "name must be a non-empty string"),
        ({**entry(), "dataset": ["x"]}, "unknown key(s) dataset"),
        ({"name": "n", "sha256": DIGEST, "role": "read"}, "missing key(s) datasets"),
        ("token", "each token must be an object"),
    ],
)
def test_bad_entries_are_refused_by_name(raw: object, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_entries(json.dumps([entry(name="first"), raw]), "FUSOU_AUTH_TOKENS")
    message = str(refused.value)
    assert message.startswith("FUSOU_AUTH_TOKENS: token 1: ") and says in message


def test_the_list_itself_must_be_json() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_entries("[{", "FUSOU_AUTH_TOKENS")
    with pytest.raises(ConfigError, match="must be a JSON list"):
        parse_entries(json.dumps(entry()), "FUSOU_AUTH_TOKENS")


def test_both_sources_add_up_and_a_hash_appears_once(tmp_path: Path) -> None:
    assert configured_tokens(Settings()) is None
    assert configured_tokens(Settings().replace(auth_tokens="[]")) == {}
    other = hash_token("u")
    file = tmp_path / "tokens.json"
    file.write_text(json.dumps([entry(name="b", sha256=other)]))
    found = configured_tokens(
        Settings().replace(auth_tokens=json.dumps([entry(name="a")]), auth_tokens_file=str(file))
    )
    assert found is not None and {e.name for e in found.values()} == {"a", "b"}
    file.write_text(json.dumps([entry(name="b")]))
    with pytest.raises(ConfigError, match="'a' and 'b' have the same sha256"):
        configured_tokens(
            Settings().replace(
                auth_tokens=json.dumps([entry(name="a")]), auth_tokens_file=str(file)
            )
        )
    with pytest.raises(ConfigError, match="FUSOU_AUTH_TOKENS_FILE: cannot read"):
        configured_tokens(Settings().replace(auth_tokens_file=str(tmp_path / "missing.json")))


def test_tls_needs_both_files() -> None:
    with pytest.raises(ConfigError, match="set both or neither"):
        Settings.from_env({"FUSOU_TLS_CERT_FILE": "/c.pem"})
    assert Settings.from_env({"FUSOU_TLS_CERT_FILE": "/c", "FUSOU_TLS_KEY_FILE": "/k"})


def test_new_tokens_are_long_and_distinct() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(t.startswith("fusou_") and len(t) >= 48 for t in tokens)


def test_fusou_token_prints_a_token_and_the_entry_that_admits_it() -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "fusou.cli.main", "token", "--name", "gateway"),
            *("--role", "ingest", "--role", "read", "--dataset", "demo", "--dataset", "team-*"),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    printed = json.loads(done.stdout)
    assert printed["entry"]["sha256"] == hash_token(printed["token"])
    assert printed["entry"]["role"] == ["ingest", "read"]
    found = configured_tokens(Settings().replace(auth_tokens=json.dumps([printed["entry"]])))
    assert found is not None
    grant = AccessControl(found).admit(
        "/fusou.reader.v1.ReaderService/ReadRange",
        [("authorization", f"Bearer {printed['token']}")],
    )
    assert grant.principal == "gateway"

    refused = subprocess.run(
        [
            *(sys.executable, "-m", "fusou.cli.main", "token", "--name", "x"),
            *("--role", "read", "--dataset", "a/b"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "datasets" in refused.stderr


def test_a_token_variable_set_but_empty_stops_the_server_instead_of_opening_it() -> None:
    for name in ("FUSOU_AUTH_TOKENS", "FUSOU_AUTH_TOKENS_FILE"):
        for blank in ("", "  "):
            with pytest.raises(ConfigError, match=f"{name}: is set but empty"):
                Settings.from_env({name: blank})
