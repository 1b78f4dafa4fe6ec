"""The playground's HTTP server: the static page, a JSON API under /api (token-guarded) and live updates
as server-sent events.

Every answer to bad input is a 4xx with ``{"error": "<one line>"}``; model work (building networks, an
export) runs off the event loop, and training runs on each session's own thread.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ganforge.errors import GanforgeError
from ganforge.playground.security import BadJSON, HostCheck, Limits, new_token, parse_json, require_token
from ganforge.playground.sessions import LimitError, Session, Sessions
from ganforge.playground.setup import check, meta_info, parse_setup

STATIC = Path(__file__).resolve().parent / "static"
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
REAP_EVERY_S = 1.0
KEEPALIVE_S = 15.0
MAX_DELAY_MS = 10_000


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


async def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object (an empty body is {}), or a 4xx naming what is wrong with it."""
    limit = request.app.state.limits.max_json_bytes
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise HTTPException(413, f"the request body is over {limit} bytes: send a smaller setup")
    if not raw.strip():
        return {}
    try:
        obj = parse_json(raw)
    except BadJSON as e:
        raise HTTPException(400, f"{e}: send a JSON object") from None
    if not isinstance(obj, dict):
        raise HTTPException(400, f"the request body must be a JSON object, got {type(obj).__name__}")
    return obj


def _setup_of(request: Request, body: dict[str, Any]):
    if "setup" not in body:
        raise HTTPException(400, 'the body must be {"setup": {...}}: the setup object is missing')
    lim = request.app.state.limits
    return parse_setup(body["setup"], max_batch=lim.max_batch, max_points=lim.max_points)


def _session(request: Request, sid: str) -> Session:
    s = request.app.state.sessions.get(sid)
    if s is None:
        raise HTTPException(404, f"no session {sid!r}: it was closed or left idle; start a new one")
    return s


def _clean(obj):
    """JSON-safe: NaN and infinities (a diverged loss) become null, as the page's JSON.parse needs."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _version() -> str:
    """The installed package's version (``ganforge`` itself sits above this layer, so not its __version__)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ganforge")
    except PackageNotFoundError:
        return "unknown"


def _api(app: FastAPI) -> APIRouter:
    api = APIRouter(prefix="/api", dependencies=[Depends(require_token)])

    @api.get("/meta")
    def meta():
        return {"version": _version(), **meta_info(), "limits": app.state.limits.to_dict()}

    @api.post("/check")
    async def check_setup(request: Request):
        setup = _setup_of(request, await _body(request))
        return await run_in_threadpool(check, setup, app.state.uploads)

    @api.post("/sessions", status_code=201)
    async def create_session(request: Request):
        setup = _setup_of(request, await _body(request))
        result = await run_in_threadpool(check, setup, app.state.uploads)
        if not result["ok"]:
            first = result["errors"][0]
            return _error(400, first["error"], net=first["net"], index=first["index"], check=result)
        session = await run_in_threadpool(app.state.sessions.create, setup, app.state.uploads, result)
        return JSONResponse({"id": session.id, "check": result}, status_code=201)

    @api.post("/sessions/{sid}/control")
    async def control(sid: str, request: Request):
        session = _session(request, sid)
        body = await _body(request)
        action, delay = body.get("action"), body.get("delay_ms")
        if not isinstance(action, str):
            raise HTTPException(400, 'the body must name an action: {"action": "train" | "stop" | "step" | '
                                     '"step_g" | "step_d" | "reset", "delay_ms": 0}')
        if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int)
                                  or not 0 <= delay <= MAX_DELAY_MS):
            raise HTTPException(400, f"delay_ms must be a whole number of milliseconds from 0 to {MAX_DELAY_MS}, "
                                     f"got {delay!r}")
        return session.control(action, delay)

    @api.get("/sessions/{sid}/state")
    def state(sid: str, request: Request):
        return JSONResponse(_clean(_session(request, sid).latest()))

    @api.get("/sessions/{sid}/events")
    async def events(sid: str, request: Request, limit: int = 0):
        """Server-sent events: one ``update`` on connect, then each new one; ``limit`` > 0 ends the stream
        after that many (for tests and one-shot readers)."""
        session = _session(request, sid)
        if limit < 0:
            raise HTTPException(400, f"limit must be 0 (no end) or a positive number of events, got {limit}")

        async def stream():
            session.streams += 1
            sent, version = 0, -1
            loop = asyncio.get_running_loop()
            last_beat = last_check = loop.time()
            try:
                while not session.closed:
                    if session.version != version and session.version > 0:
                        version = session.version
                        yield f"event: update\ndata: {json.dumps(_clean(session.latest()))}\n\n"
                        sent += 1
                        last_beat = loop.time()
                        if limit and sent >= limit:
                            return
                        continue
                    now = loop.time()
                    if now - last_beat > KEEPALIVE_S:
                        yield ": keep-alive\n\n"
                        last_beat = now
                    if now - last_check > 0.5:
                        last_check = now
                        if await request.is_disconnected():
                            return
                    await asyncio.sleep(0.01)
            finally:
                session.streams -= 1
                session.touch()

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.get("/sessions/{sid}/timeline.gif")
    async def timeline(sid: str, request: Request):
        gif = await run_in_threadpool(_session(request, sid).timeline_gif)
        return Response(gif, media_type="image/gif")

    @api.post("/sessions/{sid}/export")
    async def export(sid: str, request: Request):
        session = _session(request, sid)
        body = await _body(request)
        name = body.get("name") or f"playground-{sid}"
        if not isinstance(name, str) or not NAME.fullmatch(name) or name.startswith("."):
            raise HTTPException(400, f"run name {repr(name)[:70]} must be 1 to 64 letters, digits, '.', '_' "
                                     "or '-', not starting with '.' (the explore view does not list hidden "
                                     "folders)")
        path = await run_in_threadpool(session.export, app.state.runs_dir, name)
        return {"run": str(path), "name": path.name}

    @api.delete("/sessions/{sid}", status_code=204)
    def delete(sid: str, request: Request):
        if not app.state.sessions.remove(sid):
            raise HTTPException(404, f"no session {sid!r}: it was closed or left idle already")
        return Response(status_code=204)

    # The same as DELETE, for navigator.sendBeacon (POST only), which a closing tab can still send.
    api.post("/sessions/{sid}/close", status_code=204)(delete)

    return api


def _extra_routers() -> list[APIRouter]:
    """pg-extra's upload and explore routers, when present. The guard goes once they land on main."""
    routers = []
    for module in ("ganforge.playground.uploads", "ganforge.playground.explore"):
        try:
            mod = __import__(module, fromlist=["make_router"])
        except ImportError:
            continue
        if hasattr(mod, "make_router"):
            routers.append(mod.make_router())
    return routers


def create_app(runs_dir: str | Path = "runs", token: str | None = None, limits: Limits | None = None,
               hosts: set[str] | None = None) -> FastAPI:
    """The playground app. ``token`` (random when None) guards every /api call; ``limits`` bound sessions,
    model sizes, batch sizes and uploads; ``runs_dir`` is where exports go and runs are explored from;
    ``hosts``, when given, are the only Host header names answered (see :class:`HostCheck`)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        async def reaper():
            while True:
                await asyncio.sleep(REAP_EVERY_S)
                app.state.sessions.reap()

        task = asyncio.create_task(reaper())
        try:
            yield
        finally:
            task.cancel()
            await run_in_threadpool(app.state.sessions.close_all)

    app = FastAPI(title="ganforge playground", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.token = token or new_token()
    app.state.limits = limits or Limits()
    app.state.runs_dir = Path(runs_dir)
    app.state.uploads = {}
    app.state.sessions = Sessions(app.state.limits)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such page or endpoint: {request.url.path}"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return _error(exc.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        where = ".".join(str(p) for p in errs[0].get("loc", [])) if errs else "request"
        what = errs[0].get("msg", "is not valid") if errs else "is not valid"
        return _error(400, f"{where}: {what}")

    @app.exception_handler(LimitError)
    async def limit_error(request: Request, exc: LimitError):
        return _error(exc.status, str(exc))

    @app.exception_handler(GanforgeError)
    async def ganforge_error(request: Request, exc: GanforgeError):
        return _error(400, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception):  # a bug: still one JSON line for the page
        return _error(500, f"internal error ({type(exc).__name__}) on {request.url.path}: the server goes on; "
                           "please report it with the setup that caused it")

    app.include_router(_api(app))
    for router in _extra_routers():
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if hosts:
        app.add_middleware(HostCheck, hosts=hosts)
    return app
