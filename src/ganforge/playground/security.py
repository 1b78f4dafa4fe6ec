"""The session token that guards every /api/ call, and the playground's limits.

A minimal stand-in written by pg-extra so its routers can be tested on their own; pg-core owns this file and
its version is the one to keep.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request

TOKEN_HEADER = "X-Ganforge-Token"
TOKEN_ERROR = "missing or wrong token: open the URL that `ganforge playground` printed"


@dataclass
class Limits:
    max_sessions: int = 8
    max_params: int = 5_000_000
    max_batch: int = 512
    max_upload_bytes: int = 50 * 1024 * 1024
    max_images: int = 20_000
    max_pixels: int = 4096 * 4096
    max_points: int = 20_000
    idle_timeout_s: float = 60


def require_token(request: Request) -> None:
    """FastAPI dependency: the request carries ``app.state.token`` as ``?token=`` or the X-Ganforge-Token header."""
    expected = getattr(request.app.state, "token", None)
    given = request.query_params.get("token") or request.headers.get(TOKEN_HEADER) or ""
    if not expected or not secrets.compare_digest(given.encode(), str(expected).encode()):
        raise HTTPException(status_code=403, detail={"error": TOKEN_ERROR})
