"""The dashboard's pages, handed to the server's HTTP port (``fusou.server.http``) by the
reader service: ``/dashboard`` (HTML), ``/dashboard/stats.json`` (the same snapshot as
JSON), and the scripts they load."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from importlib import resources

import asyncpg
import orjson
from aiohttp import web
from plotly.offline import get_plotlyjs

from fusou.config import Settings
from fusou.dashboard.page import render
from fusou.dashboard.rates import RateSampler
from fusou.dashboard.snapshot import Snapshot, take_snapshot
from fusou.server.http import Asset, Pages, Viewer

PREFIX = "/dashboard"
TITLE = "FUSOU dashboard"
# The RPC whose rule admits a viewer: the dashboard shows what GetStats answers.
RULE_METHOD = "/fusou.reader.v1.ReaderService/GetStats"
DEFAULT_REFRESH_S = 30
MAX_REFRESH_S = 3600


@functools.cache
def _plotly_js() -> Asset:
    return Asset(get_plotlyjs().encode(), "application/javascript")


@functools.cache
def _dashboard_js() -> Asset:
    script = resources.files("fusou.dashboard").joinpath("static/dashboard.js").read_bytes()
    return Asset(script, "application/javascript")


def _refresh(request: web.Request) -> int:
    raw = request.query.get("refresh", str(DEFAULT_REFRESH_S))
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(
            text=f"refresh: {raw!r} is not a whole number of seconds"
        ) from None
    if not 0 <= value <= MAX_REFRESH_S:
        raise web.HTTPBadRequest(text=f"refresh: must be 0 (off) to {MAX_REFRESH_S} seconds")
    return value


def _json(snapshot: Snapshot) -> bytes:
    return orjson.dumps(dataclasses.asdict(snapshot), option=orjson.OPT_NON_STR_KEYS)


def dashboard_pages(pool: asyncpg.Pool, settings: Settings) -> Pages:
    sampler = RateSampler(settings.server.metrics_interval_s)

    async def snapshot_for(viewer: Viewer) -> Snapshot:
        return await take_snapshot(pool, viewer.may_see, viewer.sees_all, sampler)

    async def page(request: web.Request, viewer: Viewer) -> web.StreamResponse:
        refresh = _refresh(request)
        snapshot = await snapshot_for(viewer)
        # Building the figures is CPU work: off the loop that answers health checks.
        text = await asyncio.to_thread(
            render, snapshot, prefix=PREFIX, viewer=viewer.name, refresh_s=refresh, title=TITLE
        )
        return web.Response(text=text, content_type="text/html")

    async def stats(_request: web.Request, viewer: Viewer) -> web.StreamResponse:
        snapshot = await snapshot_for(viewer)
        body = await asyncio.to_thread(_json, snapshot)
        return web.Response(body=body, content_type="application/json")

    return Pages(
        prefix=PREFIX,
        title=TITLE,
        rule_method=RULE_METHOD,
        handlers={"": page, "/stats.json": stats},
        assets={"/plotly.min.js": _plotly_js, "/dashboard.js": _dashboard_js},
        background=sampler.run,
    )
