"""The rules per RPC: the bearer token read from the metadata, what an empty token list
admits, and who may call an RPC without a rule."""

from __future__ import annotations

import pytest

from fusou.api.access import RULES, AccessControl, bearer_token
from fusou.auth.tokens import entry_from_json, hash_token
from fusou.errors import PermissionDenied, Unauthenticated


def entry(**changes: object) -> dict[str, object]:
    return {"name": "n", "sha256": hash_token("t"), "role": "read", "datasets": ["demo"], **changes}


def test_bearer_token_parsing() -> None:
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "bearer  abc ")]) == "abc"
    assert bearer_token([("authorization", b"Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "Basic abc")]) is None
    assert bearer_token([("authorization", "Bearer ")]) is None
    assert bearer_token([("x-other", "Bearer abc")]) is None
    assert bearer_token(None) is None


def test_an_empty_token_list_admits_nobody_but_health() -> None:
    access = AccessControl({})
    with pytest.raises(Unauthenticated):
        access.admit(next(iter(RULES)), [("authorization", "Bearer x")])
    assert access.admit("/grpc.health.v1.Health/Check", None).principal is None


def test_an_rpc_without_a_rule_is_for_admins_of_every_dataset() -> None:
    tokens = {
        hash_token("all"): entry_from_json(entry(name="all", role="admin", datasets=["*"])),
        hash_token("some"): entry_from_json(entry(name="some", role="admin")),
        hash_token("read"): entry_from_json(entry(name="read", datasets=["*"])),
    }
    access = AccessControl(tokens)
    method = "/fusou.future.v1.FutureService/Anything"
    access.admit(method, [("authorization", "Bearer all")]).check(object())
    with pytest.raises(PermissionDenied):
        access.admit(method, [("authorization", "Bearer some")]).check(object())
    with pytest.raises(PermissionDenied):
        access.admit(method, [("authorization", "Bearer read")])
