"""``fusou read --where`` conditions as a person types them."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from fusou.cli.input_error import InputError
from fusou.cli.where import parse_where


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("hp >= 40", {"column": "hp", "op": "FILTER_OP_GE", "values": [40.0]}),
        ("hp>=40", {"column": "hp", "op": "FILTER_OP_GE", "values": [40.0]}),
        ("x = -1.5e3", {"column": "x", "op": "FILTER_OP_EQ", "values": [-1500.0]}),
        ("ship = 'akagi'", {"column": "ship", "op": "FILTER_OP_EQ", "values": ["akagi"]}),
        ('ship == "it\'s"', {"column": "ship", "op": "FILTER_OP_EQ", "values": ["it's"]}),
        ("ship <> kaga", {"column": "ship", "op": "FILTER_OP_NE", "values": ["kaga"]}),
        ("code = '42'", {"column": "code", "op": "FILTER_OP_EQ", "values": ["42"]}),
        ("won != true", {"column": "won", "op": "FILTER_OP_NE", "values": [True]}),
        ("won = FALSE", {"column": "won", "op": "FILTER_OP_EQ", "values": [False]}),
        ("n < 3", {"column": "n", "op": "FILTER_OP_LT", "values": [3.0]}),
        ("n <= 3", {"column": "n", "op": "FILTER_OP_LE", "values": [3.0]}),
        ("n > 3", {"column": "n", "op": "FILTER_OP_GT", "values": [3.0]}),
        (
            "api_no in (1, 2,3)",
            {"column": "api_no", "op": "FILTER_OP_IN", "values": [1.0, 2.0, 3.0]},
        ),
        (
            "ship IN ('a, b', kaga)",
            {"column": "ship", "op": "FILTER_OP_IN", "values": ["a, b", "kaga"]},
        ),
        ("note is null", {"column": "note", "op": "FILTER_OP_IS_NULL"}),
        (r"path = 'C:\\temp'", {"column": "path", "op": "FILTER_OP_EQ", "values": ["C:\\temp"]}),
        (r'say = "\"hi\""', {"column": "say", "op": "FILTER_OP_EQ", "values": ['"hi"']}),
        (r"""s in ("x\"y", 'z')""", {"column": "s", "op": "FILTER_OP_IN", "values": ['x"y', "z"]}),
        ("word = nan", {"column": "word", "op": "FILTER_OP_EQ", "values": ["nan"]}),
        ("n = 1_000", {"column": "n", "op": "FILTER_OP_EQ", "values": ["1_000"]}),
        ("note IS NOT NULL", {"column": "note", "op": "FILTER_OP_IS_NOT_NULL"}),
    ],
)
def test_conditions(text: str, want: dict[str, object]) -> None:
    assert json_format.MessageToDict(parse_where(text)) == want


@pytest.mark.parametrize(
    "text",
    [
        "hp",
        "hp ~ 3",
        "= 3",
        "hp in ()",
        "1x = 2",
        "note is nul",
        "x =< 5",
        "ship = 'a' and hp = 2",
        "ship in ('a' 'b')",
        "x = 'a'b'",
        "x = 'open",
        "id = 9007199254740993",
    ],
)
def test_what_is_not_a_condition(text: str) -> None:
    with pytest.raises(InputError, match="--where"):
        parse_where(text)
