"""The Host rule: a server bound to loopback answers only requests addressed to a loopback name.

A web page can make a browser send requests to a loopback server through a name it
controls (DNS rebinding): the browser then sends that name in Host. Refusing every
Host that is not a loopback name (or one the operator allowed) closes that path
without breaking local clients, which all send localhost, 127.0.0.1 or [::1].

Pure functions, stdlib only: the agent endpoint and the service both apply them.
"""

from __future__ import annotations

import ipaddress

__all__ = ["ANY_HOST", "LOOPBACK_NAMES", "allowed_names", "host_allowed", "is_loopback", "request_host"]

# What local clients send as Host when they reach a loopback server; any port.
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
    """The Host names a server bound to `bound_to` answers; None when it answers any."""
    if ANY_HOST in allowed_hosts or (not allowed_hosts and not is_loopback(bound_to)):
        return None
    return LOOPBACK_NAMES | frozenset(allowed_hosts)


def host_allowed(header: str | None, names: frozenset[str] | None) -> bool:
    """Whether a request with this Host header (None: none sent) is answered by a server answering `names`."""
    if names is None:
        return True
    return header is not None and request_host(header).rstrip(".") in names
