"""The playground's guards: the session token on every /api call, and the server's limits."""
from __future__ import annotations

import ipaddress
import json
import secrets
from dataclasses import asdict, dataclass

from fastapi import HTTPException, Request

TOKEN_ERROR = "missing or wrong token: open the URL that `ganforge playground` printed"
TOKEN_HEADER = "X-Ganforge-Token"


@dataclass
class Limits:
    max_sessions: int = 8
    max_params: int = 5_000_000  # G and D together
    max_batch: int = 512
    max_upload_bytes: int = 50 * 1024 * 1024
    max_images: int = 20_000
    max_pixels: int = 4096 * 4096  # decoded pixels per uploaded image
    max_points: int = 20_000  # drawn or uploaded 2-D points
    idle_timeout_s: float = 60.0  # a session with no events stream and no request for this long is removed
    max_json_bytes: int = 4 * 1024 * 1024  # a JSON request body (a setup with drawn points included)

    def to_dict(self) -> dict:
        return asdict(self)


def new_token() -> str:
    return secrets.token_urlsafe(16)


def require_token(request: Request) -> None:
    """FastAPI dependency: the app's token as query ``?token=`` or header ``X-Ganforge-Token``, else 403."""
    given = request.query_params.get("token") or request.headers.get(TOKEN_HEADER) or ""
    if not secrets.compare_digest(given.encode(), str(request.app.state.token).encode()):
        raise HTTPException(status_code=403, detail=TOKEN_ERROR)


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


MAX_JSON_DEPTH = 32  # a setup nests four levels; anything far deeper is not one


class BadJSON(ValueError):
    """A request body that is not usable JSON; the message says why."""


def parse_json(raw: bytes) -> object:
    """``raw`` as JSON, or BadJSON for text that is not JSON, nests over MAX_JSON_DEPTH or holds a number
    too long for Python to read (instead of the RecursionError or ValueError json.loads would raise)."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise BadJSON(f"the request body is not JSON ({e.msg})") from None
    except UnicodeDecodeError:
        raise BadJSON("the request body is not JSON (it is not UTF-8 text)") from None
    except RecursionError:
        raise BadJSON(f"the request body nests too deeply (more than {MAX_JSON_DEPTH} levels)") from None
    except ValueError as e:  # e.g. an integer of thousands of digits
        raise BadJSON(f"the request body holds a value Python cannot read ({str(e).split(':')[0]})") from None
    stack = [(obj, 1)]
    while stack:  # iterative: a deep body must not exhaust the stack here either
        value, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadJSON(f"the request body nests too deeply (more than {MAX_JSON_DEPTH} levels)")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return obj


def loopback_names(host: str) -> set[str]:
    """The Host header names a browser on this machine uses for a server bound to loopback ``host``."""
    bare = host.strip("[]").lower()
    return {"localhost", "127.0.0.1", "[::1]", bare, f"[{bare}]"}


class HostCheck:
    """ASGI middleware: answer only requests whose Host header is one of ``hosts`` (port ignored).

    A page on another site can point its own host name at 127.0.0.1 (DNS rebinding) and then talk to this
    server as same-origin; the token already stops it, and checking the name closes the door twice."""

    def __init__(self, app, hosts: set[str]):
        self.app, self.hosts = app, {h.lower() for h in hosts}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1").strip().lower()
            name = host if host.endswith("]") else host.rsplit(":", 1)[0]
            if name not in self.hosts:
                from fastapi.responses import JSONResponse

                shown = "".join(c for c in name if c.isprintable())[:60] or "(none)"
                response = JSONResponse({"error": f"this server answers only as {', '.join(sorted(self.hosts))}, "
                                                  f"not host {shown}: open the URL that `ganforge playground` "
                                                  "printed"}, status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
