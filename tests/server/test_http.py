"""The HTTP port over a real connection: /metrics open as scrapers expect, pages behind the
bearer tokens (a header, or the cookie their login form sets), admitted by the rule of the RPC
they mirror and limited to the token's datasets."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

from fusou.api.access import AccessControl
from fusou.auth.tokens import Role, TokenEntry, hash_token, new_token
from fusou.catalog.stats import TableStats
from fusou.server import http
from fusou.server.http import COOKIE, Asset, HttpPort, Pages, Viewer, serve
from fusou.server.metrics import OTHER, TableSeries
from tests.support.stats import table_stats

RULE = "/fusou.reader.v1.ReaderService/GetStats"  # admins of the datasets
ADMIN_A, ADMIN_ALL, READER = new_token(), new_token(), new_token()
TOKENS = {
    hash_token(ADMIN_A): TokenEntry(
        "admin-a", hash_token(ADMIN_A), frozenset({Role.ADMIN}), ("a*",)
    ),
    hash_token(ADMIN_ALL): TokenEntry(
        "root", hash_token(ADMIN_ALL), frozenset({Role.ADMIN}), ("*",)
    ),
    hash_token(READER): TokenEntry("reader", hash_token(READER), frozenset({Role.READ}), ("*",)),
}


class Recorder:
    def __init__(self) -> None:
        self.viewers: list[Viewer] = []

    async def page(self, _request: web.Request, viewer: Viewer) -> web.StreamResponse:
        self.viewers.append(viewer)
        return web.Response(text="the figures", content_type="text/html")


def pages(recorder: Recorder) -> Pages:
    return Pages(
        prefix="/board",
        title="Board",
        rule_method=RULE,
        handlers={"": recorder.page},
        assets={"/app.js": lambda: Asset(b"console.log(1)", "application/javascript")},
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def port(recorder: Recorder) -> AsyncIterator[HttpPort]:
    served = await serve("127.0.0.1", 0, [pages(recorder)], AccessControl(TOKENS))
    try:
        yield served
    finally:
        await served.close()


@pytest.fixture
async def client(port: HttpPort) -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe: keep cookies of an IP address host.
    async with aiohttp.ClientSession(
        f"http://127.0.0.1:{port.port}", cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        yield session


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_metrics_and_assets_are_open(client: aiohttp.ClientSession) -> None:
    async with client.get("/metrics") as r:
        assert r.status == 200
        assert "process_resident_memory_bytes" in await r.text()
    async with client.get("/board/app.js") as r:
        assert r.status == 200
        assert await r.read() == b"console.log(1)"


async def test_a_page_without_a_token_asks_for_one(
    client: aiohttp.ClientSession, recorder: Recorder
) -> None:
    for headers in ({}, bearer("fusou_not-a-token"), {"Authorization": "Basic eDp5"}):
        async with client.get("/board", headers=headers) as r:
            assert r.status == 401, headers
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            text = await r.text()
            assert 'action="/board/login"' in text
            assert "the figures" not in text
    assert recorder.viewers == []


async def test_a_token_without_the_role_is_refused(
    client: aiohttp.ClientSession, recorder: Recorder
) -> None:
    async with client.get("/board", headers=bearer(READER)) as r:
        assert r.status == 403
        assert "needs the role admin" in await r.text()
    assert recorder.viewers == []


async def test_a_viewer_sees_the_datasets_of_the_token(
    client: aiohttp.ClientSession, recorder: Recorder
) -> None:
    async with client.get("/board", headers=bearer(ADMIN_A)) as r:
        assert r.status == 200
        assert await r.text() == "the figures"
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["Cache-Control"] == "no-store"
    async with client.get("/board", headers=bearer(ADMIN_ALL)) as r:
        assert r.status == 200
    limited, everything = recorder.viewers
    assert limited.name == "admin-a"
    assert limited.may_see("a1") and not limited.may_see("b1")
    assert not limited.sees_all
    assert everything.sees_all and everything.may_see("b1")


async def test_login_sets_a_strict_cookie_and_logout_clears_it(
    client: aiohttp.ClientSession, recorder: Recorder
) -> None:
    async with client.post("/board/login", data={"token": "fusou_wrong"}) as r:
        assert r.status == 401
        assert "unknown bearer token" in await r.text()
        assert COOKIE not in r.cookies
    async with client.post("/board/login", data={"token": READER}) as r:
        assert r.status == 403
        assert COOKIE not in r.cookies
    async with client.post("/board/login", data={"token": ""}) as r:
        assert r.status == 400
    async with client.post(
        "/board/login", data={"token": f" {ADMIN_A} "}, allow_redirects=False
    ) as r:
        assert r.status == 303
        assert r.headers["Location"] == "/board"
        cookie = r.cookies[COOKIE]
        assert cookie.value == ADMIN_A
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert cookie["path"] == "/board"
    async with client.get("/board") as r:
        assert r.status == 200
    assert [v.name for v in recorder.viewers] == ["admin-a"]
    async with client.post("/board/logout", allow_redirects=False) as r:
        assert r.status == 303
    async with client.get("/board") as r:
        assert r.status == 401


async def test_without_tokens_everyone_sees_everything(recorder: Recorder) -> None:
    served = await serve("127.0.0.1", 0, [pages(recorder)], None)
    try:
        async with (
            aiohttp.ClientSession(f"http://127.0.0.1:{served.port}") as session,
            session.get("/", allow_redirects=False) as r,
        ):
            assert r.status == 302
            assert r.headers["Location"] == "/board"
            async with session.get("/board") as page:
                assert page.status == 200
    finally:
        await served.close()
    (viewer,) = recorder.viewers
    assert viewer.name is None and viewer.sees_all


async def test_a_port_in_use_is_a_configuration_error() -> None:
    from fusou.config import ConfigError

    first = await serve("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match="FUSOU_METRICS_PORT"):
            await serve("127.0.0.1", first.port)
    finally:
        await first.close()


def _table(dataset: str, rows: int) -> TableStats:
    return table_stats(dataset, hot_rows=rows, hot_bytes=rows)


def _datasets_in(text: str) -> set[str]:
    return {
        s.labels["dataset"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if family.name == "fusou_table_rows"
    }


async def test_per_table_series_need_a_token_when_tokens_are_configured(
    client: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    series = TableSeries()
    series.update([_table("a1", 3), _table("b1", 2), _table("c1", 1)], 2)
    monkeypatch.setattr(http, "TABLES", series)
    async with client.get("/metrics") as r:
        assert r.status == 200
        assert "fusou_table_rows" not in await r.text()  # no dataset names on the open port
    async with client.get("/metrics/tables") as r:
        assert r.status == 401
    async with client.get("/metrics/tables", headers=bearer(READER)) as r:
        assert r.status == 403
    async with client.get("/metrics/tables", headers=bearer(ADMIN_A)) as r:
        assert r.status == 200
        assert _datasets_in(await r.text()) == {"a1"}  # the rest's sum mixes datasets
    async with client.get("/metrics/tables", headers=bearer(ADMIN_ALL)) as r:
        assert _datasets_in(await r.text()) == {"a1", "b1", OTHER}


async def test_without_tokens_metrics_hold_the_per_table_series(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    series = TableSeries()
    series.update([_table("a1", 3)], 5)
    monkeypatch.setattr(http, "TABLES", series)
    served = await serve("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{served.port}") as session:
            async with session.get("/metrics", headers={"Accept-Encoding": "gzip"}) as r:
                assert r.headers["Content-Encoding"] == "gzip"
                assert _datasets_in(await r.text()) == {"a1"}
            openmetrics = {"Accept": "application/openmetrics-text; version=1.0.0"}
            async with session.get("/metrics", headers=openmetrics) as r:
                assert r.headers["Content-Type"].startswith("application/openmetrics-text")
                assert (await r.text()).endswith("# EOF\n")
    finally:
        await served.close()


async def test_a_form_posted_from_elsewhere_is_refused(
    client: aiohttp.ClientSession, port: HttpPort
) -> None:
    elsewhere = {"Origin": "https://attacker.example"}
    async with client.post(
        "/board/login", data={"token": ADMIN_A}, headers=elsewhere, allow_redirects=False
    ) as r:
        assert r.status == 403
        assert COOKIE not in r.cookies
    async with client.post("/board/logout", headers=elsewhere, allow_redirects=False) as r:
        assert r.status == 403
    own = {"Origin": f"http://127.0.0.1:{port.port}"}
    async with client.post(
        "/board/login", data={"token": ADMIN_A}, headers=own, allow_redirects=False
    ) as r:
        assert r.status == 303


async def test_errors_carry_the_security_headers_too(client: aiohttp.ClientSession) -> None:
    async with client.get("/board/nothing-here") as r:
        assert r.status == 404
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]


async def test_closing_survives_a_failed_background_task(recorder: Recorder) -> None:
    async def broken() -> None:
        raise RuntimeError("sampling broke")

    board = dataclasses.replace(pages(recorder), background=broken)
    served = await serve("127.0.0.1", 0, [board], None)
    await asyncio.sleep(0)  # the task runs and fails
    await served.close()
    # The port is closed: binding it again works.
    again = await serve("127.0.0.1", served.port)
    await again.close()


@pytest.mark.parametrize(
    ("headers", "same"),
    [
        ({"Host": "dash.example:80", "Origin": "http://dash.example"}, True),
        ({"Host": "DASH.example", "Origin": "http://dash.example:80"}, True),
        ({"Host": "dash.example:9464", "Origin": "http://dash.example:9464"}, True),
        ({"Host": "dash.example:9464", "Origin": "http://dash.example:9465"}, False),
        ({"Host": "[::1]:9464", "Origin": "http://[::1]:9464"}, True),
        # Behind a TLS-terminating proxy that forwards its own host and scheme.
        (
            {
                "Host": "fusou-reader:9464",
                "X-Forwarded-Host": "dash.example",
                "X-Forwarded-Proto": "https, http",
                "Origin": "https://dash.example",
            },
            True,
        ),
        ({"Host": "dash.example", "Origin": "https://evil.example"}, False),
        ({"Host": "dash.example", "Origin": "garbage"}, False),
        ({"Host": "dash.example", "Sec-Fetch-Site": "cross-site"}, False),
        ({"Host": "dash.example", "Sec-Fetch-Site": "same-origin"}, True),
        ({"Host": "dash.example"}, True),  # curl
    ],
)
def test_the_origin_check(headers: dict[str, str], same: bool) -> None:
    request = make_mocked_request("POST", "/board/login", headers=headers)
    assert http._same_origin(request) is same  # noqa: SLF001 - the check itself
