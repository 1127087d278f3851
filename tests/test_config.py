"""Configuration from ``FUSOU_*`` variables: defaults, validation naming the bad variable, the CLI's
exit code, and the agreement of ``VARIABLES`` with the sections of ``Settings``."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fusou.config import VARIABLES, ConfigError, Settings, Variable
from fusou.schema.time_bounds import MAX_TIME_MS, MIN_TIME_MS

MiB = 1024 * 1024


def test_defaults_without_variables() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.database.url is None
    assert settings.store.url is None
    assert settings.server.grpc_port == 50051
    assert settings.server.grpc_max_message_bytes == 64 * MiB
    assert settings.server.shutdown_grace_s == 15.0
    assert settings.archive.codec == "deflate"


def test_variables_outside_the_fusou_prefix_are_ignored() -> None:
    assert Settings.from_env({"GRPC_PORT": "x", "DATABASE_URL": "mysql://x"}) == Settings()


def test_valid_values_are_parsed() -> None:
    settings = Settings.from_env(
        {
            "FUSOU_DATABASE_URL": "postgresql://u@db:5432/fusou",
            "FUSOU_OBJECT_STORE_URL": "s3://bucket/prefix",
            "FUSOU_GRPC_PORT": " 0 ",
            "FUSOU_GRPC_MAX_MESSAGE_BYTES": "65536",
            "FUSOU_SHUTDOWN_GRACE_S": "2.5",
            "FUSOU_ARCHIVE_CODEC": "SNAPPY",
            "FUSOU_S3_ENDPOINT_URL": "",
        }
    )
    assert settings.database.url == "postgresql://u@db:5432/fusou"
    assert settings.store.url == "s3://bucket/prefix"
    assert settings.server.grpc_port == 0
    assert settings.server.grpc_max_message_bytes == 65536
    assert settings.server.shutdown_grace_s == 2.5
    assert settings.archive.codec == "snappy"
    assert settings.store.s3_endpoint_url is None
    assert Settings.from_env({"FUSOU_DATABASE_URL": "postgres://h/db"}).database.url == (
        "postgres://h/db"
    )
    assert Settings.from_env({"FUSOU_OBJECT_STORE_URL": "file:///var/fusou"}).store.url


BAD_VALUES = [
    ("FUSOU_GRPC_PORT", "fifty"),
    ("FUSOU_GRPC_PORT", "1.5"),
    ("FUSOU_GRPC_PORT", "-1"),
    ("FUSOU_GRPC_PORT", "65536"),
    ("FUSOU_DATABASE_URL", "mysql://u@db/fusou"),
    ("FUSOU_DATABASE_URL", "db.internal:5432"),
    ("FUSOU_OBJECT_STORE_URL", "gs://bucket/prefix"),
    ("FUSOU_OBJECT_STORE_URL", "s3:///no-bucket"),
    ("FUSOU_OBJECT_STORE_URL", "file://relative/path"),
    ("FUSOU_ARCHIVE_CODEC", "lz4"),
    ("FUSOU_LOG_LEVEL", "loud"),
    ("FUSOU_SHUTDOWN_GRACE_S", "soon"),
    ("FUSOU_SHUTDOWN_GRACE_S", "-1"),
    ("FUSOU_GRPC_MAX_MESSAGE_BYTES", "10"),
    ("FUSOU_DB_POOL_SIZE", "0"),
    # The accepted times may be narrowed, never widened past what the formats hold.
    ("FUSOU_MIN_TIME_MS", str(MIN_TIME_MS - 1)),
    ("FUSOU_MAX_TIME_MS", str(MAX_TIME_MS + 1)),
    ("FUSOU_MAX_TIME_MS", "1e15"),
    ("FUSOU_MAX_FIELDS", "0"),
    ("FUSOU_MAX_FIELDS", "100000"),
    ("FUSOU_MAX_NESTING_DEPTH", "33"),
    ("FUSOU_MAX_ROW_BYTES", "10"),
    # An age whose cut-off overflows, and numbers no comparison or conversion holds.
    ("FUSOU_ARCHIVE_MIN_AGE_S", str(2**62)),
    ("FUSOU_ARCHIVE_MIN_AGE_S", "nan"),
    ("FUSOU_SHUTDOWN_GRACE_S", "inf"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES)
def test_bad_value_raises_config_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    message = str(caught.value)
    assert variable in message
    # Only the bad variable is blamed.
    others = {v.env for v in VARIABLES} - {variable}
    assert not [other for other in others if other in message], message


def test_the_accepted_times_may_be_narrowed_but_not_reversed() -> None:
    narrowed = Settings.from_env(
        {"FUSOU_MIN_TIME_MS": "1600000000000", "FUSOU_MAX_TIME_MS": " 1800000000000 "}
    )
    assert (narrowed.rows.min_time_ms, narrowed.rows.max_time_ms) == (
        1_600_000_000_000,
        1_800_000_000_000,
    )
    edges = Settings.from_env(
        {"FUSOU_MIN_TIME_MS": str(MIN_TIME_MS), "FUSOU_MAX_TIME_MS": str(MAX_TIME_MS)}
    )
    assert (edges.rows.min_time_ms, edges.rows.max_time_ms) == (MIN_TIME_MS, MAX_TIME_MS)
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(
            {"FUSOU_MIN_TIME_MS": "1800000000001", "FUSOU_MAX_TIME_MS": "1800000000000"}
        )
    assert "FUSOU_MIN_TIME_MS and FUSOU_MAX_TIME_MS" in str(caught.value)
    # A minimum equal to the (default) maximum: a range of one instant, odd but consistent.
    assert (
        Settings.from_env({"FUSOU_MIN_TIME_MS": str(MAX_TIME_MS)}).rows.min_time_ms == MAX_TIME_MS
    )


def test_several_bad_variables_are_named_together() -> None:
    bad = {
        "FUSOU_GRPC_PORT": "http",
        "FUSOU_DATABASE_URL": "sqlite:///fusou.db",
        "FUSOU_OBJECT_STORE_URL": "ftp://host/x",
        "FUSOU_ARCHIVE_CODEC": "brotli",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**bad, "FUSOU_DB_POOL_SIZE": "4"})
    message = str(caught.value)
    for variable in bad:
        assert variable in message, f"{variable} not named in {message!r}"
    assert "FUSOU_DB_POOL_SIZE" not in message
    # One line per problem.
    assert len([line for line in message.splitlines() if line.strip().startswith("FUSOU_")]) == 4


def test_cli_with_a_bad_variable_exits_2_naming_it(tmp_path: Path) -> None:
    fusou = Path(sys.executable).parent / "fusou"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSOU_")}
    env["FUSOU_GRPC_PORT"] = "not-a-port"
    # A database URL that would be used if validation let the command through.
    env["FUSOU_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"
    done = subprocess.run(
        [str(fusou), "migrate"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "FUSOU_GRPC_PORT" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def value_of(settings: Settings, var: Variable) -> Any:
    return getattr(getattr(settings, var.section), var.field)


def test_every_variable_maps_to_a_settings_field_with_the_same_default() -> None:
    defaults = Settings()
    fields = {
        (section.name, f.name)
        for section in dataclasses.fields(Settings)
        for f in dataclasses.fields(getattr(defaults, section.name))
    }
    seen_envs: set[str] = set()
    seen_attrs: set[tuple[str, str]] = set()
    for var in VARIABLES:
        assert var.env.startswith("FUSOU_"), var.env
        # The field is named by the variable's tail (FUSOU_ARCHIVE_MIN_AGE_S: archive.min_age_s),
        # and replace() by the whole name (archive_min_age_s).
        assert var.env.endswith("_" + var.field.upper()), (var.env, var.field)
        assert var.env == "FUSOU_" + var.key.upper(), (var.env, var.key)
        attr = (var.section, var.field)
        assert attr in fields, f"{var.env} maps to no Settings field {attr!r}"
        assert value_of(defaults, var) == var.default, var.env
        assert var.help.strip(), f"{var.env} has no description"
        assert var.env not in seen_envs and attr not in seen_attrs, var.env
        seen_envs.add(var.env)
        seen_attrs.add(attr)
    # And every setting can be configured.
    assert seen_attrs == fields, fields - seen_attrs


@pytest.mark.parametrize("var", VARIABLES, ids=lambda v: v.env)
def test_setting_a_variable_to_its_default_changes_nothing(var: Variable) -> None:
    if var.default is None:
        if var.env in ("FUSOU_AUTH_TOKENS", "FUSOU_AUTH_TOKENS_FILE"):
            # Empty is refused rather than read as unset: it must not turn authentication off.
            with pytest.raises(ConfigError, match="set but empty"):
                Settings.from_env({var.env: ""})
            return
        assert value_of(Settings.from_env({var.env: ""}), var) is None
        return
    parsed = value_of(Settings.from_env({var.env: str(var.default)}), var)
    if isinstance(var.default, str):
        # Choices are normalized to lower case (FUSOU_LOG_LEVEL's default is spelled "INFO").
        assert isinstance(parsed, str) and parsed.lower() == var.default.lower(), var.env
    else:
        assert parsed == var.default, var.env


def test_replace_keeps_other_values_and_rejects_unknown_settings() -> None:
    base = Settings.from_env({"FUSOU_GRPC_PORT": "7000"})
    changed = base.replace(grpc_host="127.0.0.1")
    assert changed.server.grpc_port == 7000
    assert changed.server.grpc_host == "127.0.0.1"
    assert base.server.grpc_host == "[::]"
    with pytest.raises(TypeError):
        base.replace(no_such_setting=1)


def test_replace_names_settings_by_their_variable_across_sections() -> None:
    changed = Settings().replace(archive_min_age_s=0, min_time_ms=5, target="h:1", token="t")
    assert changed.archive.min_age_s == 0
    assert changed.rows.min_time_ms == 5
    assert (changed.client.target, changed.client.token) == ("h:1", "t")
    # Untouched sections stay as they were.
    assert changed.compact == Settings().compact
    with pytest.raises(TypeError):
        Settings().replace(min_age_s=0)  # a field's name alone is not a variable's


def test_the_client_token_stays_out_of_repr() -> None:
    settings = Settings.from_env({"FUSOU_TOKEN": "s3cr3t-token"})
    assert settings.client.token == "s3cr3t-token"
    assert "s3cr3t-token" not in repr(settings)
    assert "s3cr3t-token" not in repr(settings.client)
