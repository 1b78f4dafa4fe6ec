"""The playground's guards: the session token on every /api call, and the server's limits."""
from __future__ import annotations

import ipaddress
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
