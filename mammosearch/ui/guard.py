"""An ASGI guard in front of the Gradio app: the server never fetches a URL for a client.

Gradio serves ``/file=<http URL>`` by fetching the URL itself and, for an API call whose file
input names an ``http(s)`` URL instead of an upload, downloads it before the handler runs. A
case-search server inside a hospital network must do neither, so this middleware refuses, with
403 and before Gradio sees them, ``/file=`` and ``/proxy=`` requests that name a URL and JSON
calls whose file inputs are URLs. Everything else passes through untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["NoRemoteFetch"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REMOTE_PATH = re.compile(r"/(?:file=[a-z][a-z0-9+.\-]*:|proxy=)", re.IGNORECASE)
_URL = re.compile(r"^\s*[a-z][a-z0-9+.\-]*://", re.IGNORECASE)
_MAX_JSON = 16 * 1024 * 1024  # an API call's JSON body; uploads are multipart and not read here


def _names_url(value: Any) -> bool:
    """Whether a JSON value holds a file object whose ``path`` is a URL (what Gradio would
    download; its ``url`` is only where the browser fetches the upload back, and is not used)."""
    if isinstance(value, dict):
        path = value.get("path")
        if isinstance(path, str) and _URL.match(path):
            return True
        return any(_names_url(v) for v in value.values())
    if isinstance(value, list):
        return any(_names_url(v) for v in value)
    return False


class NoRemoteFetch:
    """Refuse requests that would make the server fetch a URL (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if _REMOTE_PATH.search(scope.get("path", "")):
            await _refuse(send, "this server does not fetch URLs; upload the file instead")
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope.get("method") != "POST" or content_type != b"application/json":
            await self.app(scope, receive, send)
            return
        body, messages = b"", []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if len(body) > _MAX_JSON:
                await _refuse(send, "request body too large", status=413)
                return
            if not message.get("more_body"):
                break
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            payload = None  # Gradio answers malformed JSON itself
        if _names_url(payload):
            await _refuse(send, "file inputs must be uploads; this server does not fetch URLs")
            return

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, detail: str, status: int = 403) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
