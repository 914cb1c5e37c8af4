"""The Host check: a service bound to loopback answers only requests addressed to a loopback name.

A web page can make a browser send requests to a loopback service through a name it
controls (DNS rebinding): the browser then sends that name in Host. Refusing every
Host that is not a loopback name (or one the operator allowed) closes that path
without breaking local clients, which all send localhost, 127.0.0.1 or [::1].
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from eddie_otel.service.events import FieldError
from eddie_otel.service.schema import problem

__all__ = ["ANY_HOST", "LOOPBACK_NAMES", "HostCheck", "allowed_names", "is_loopback", "request_host"]

# What local clients send as Host when they reach a loopback service; any port.
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
# Accepts any Host in EDDIE_OTEL_ALLOWED_HOSTS: the check is off.
ANY_HOST = "*"


def is_loopback(host: str) -> bool:
    """Whether the bind address `host` only listens on the loopback interface."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def request_host(header: str) -> str:
    """The name of a Host header value without its port, lower case: `[::1]:8503` is `[::1]`."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rpartition(":")[0] if ":" in value else value


def allowed_names(bound_to: str, allowed_hosts: tuple[str, ...]) -> frozenset[str] | None:
    """The Host names a service bound to `bound_to` answers; None when it answers any."""
    if ANY_HOST in allowed_hosts or (not allowed_hosts and not is_loopback(bound_to)):
        return None
    return LOOPBACK_NAMES | frozenset(allowed_hosts)


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
