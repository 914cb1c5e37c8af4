"""The Host check: a service bound to loopback answers only requests addressed to a loopback name.

A web page can make a browser send requests to a loopback service through a name it
controls (DNS rebinding): the browser then sends that name in Host. Refusing every
Host that is not a loopback name (or one the operator allowed) closes that path
without breaking local clients, which all send localhost, 127.0.0.1 or [::1].
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from eddie_otel.hosts import ANY_HOST, LOOPBACK_NAMES, allowed_names, is_loopback, request_host
from eddie_otel.service.events import FieldError
from eddie_otel.service.schema import problem

# The rule itself lives in eddie_otel.hosts, shared with the agent endpoint; re-exported here.
__all__ = ["ANY_HOST", "LOOPBACK_NAMES", "HostCheck", "allowed_names", "is_loopback", "request_host"]


class HostCheck:
    """ASGI middleware: an HTTP request whose Host is not in `names` gets 400 before any route runs."""

    def __init__(self, app: ASGIApp, names: frozenset[str]) -> None:
        self.app = app
        self.names = names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = next((value for name, value in scope["headers"] if name == b"host"), None)
        if header is None:
            message = "missing; a service bound to loopback answers requests to localhost, 127.0.0.1 or [::1]"
        else:
            name = request_host(header.decode("latin-1")).rstrip(".")
            if name in self.names:
                await self.app(scope, receive, send)
                return
            message = (
                f"{name[:64]!r} is not a name of this service; it answers localhost, 127.0.0.1, [::1] "
                "and the names in EDDIE_OTEL_ALLOWED_HOSTS"
            )
        await problem(400, [FieldError(field="Host", message=message)])(scope, receive, send)
