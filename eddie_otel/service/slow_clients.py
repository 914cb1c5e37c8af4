"""Closing slow clients: a request must arrive whole, headers and body, within READ_TIMEOUT_SECONDS.

uvicorn closes a keep-alive connection that stays idle after a response, but a
connection that sends part of a request line, part of its headers or part of its
body, and then nothing, stays open for ever: a thousand of them hold a thousand file
descriptors. The protocol below arms one deadline when a request starts (the
connection opens, or the first byte of the next request arrives) and closes the
connection when the request is not read whole by then. Data trickling in does not
move the deadline.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["KEEP_ALIVE_SECONDS", "READ_TIMEOUT_SECONDS", "SlowClientClosingProtocol"]

# A webhook body is at most 1 MiB (EDDIE_OTEL_MAX_BODY_BYTES's default): even at 1 Mbit/s
# it arrives in about 8 s, and a scrape request is a few hundred bytes. A client slower
# than this holds a connection for nothing.
READ_TIMEOUT_SECONDS = 10.0
# Idle time allowed between requests on a kept-alive connection (uvicorn's default):
# Prometheus scrapes every 15 s or more and reconnects cheaply.
KEEP_ALIVE_SECONDS = 5

# h11 states of the client while its request is still arriving: the request line and
# headers (IDLE, with some bytes buffered) or the body (SEND_BODY).
_READING = (h11.IDLE, h11.SEND_BODY)


class SlowClientClosingProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request is not read whole in READ_TIMEOUT_SECONDS."""

    _read_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Accept the connection; its first request must arrive in time."""
        super().connection_made(transport)
        self._arm_read_deadline()

    def data_received(self, data: bytes) -> None:
        """Read `data`; the deadline starts with a request's first byte and ends when it is read whole."""
        super().data_received(data)
        if self.conn.their_state in _READING and not self.transport.is_closing():
            self._arm_read_deadline()
        else:
            self._cancel_read_deadline()

    def on_response_complete(self) -> None:
        """After a response, an idle connection is uvicorn's keep-alive business until the next byte."""
        super().on_response_complete()
        self._cancel_read_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Forget the deadline of a closed connection."""
        self._cancel_read_deadline()
        super().connection_lost(exc)

    def _arm_read_deadline(self) -> None:
        if self._read_deadline is None:
            self._read_deadline = self.loop.call_later(READ_TIMEOUT_SECONDS, self._read_timed_out)

    def _cancel_read_deadline(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.conn.their_state in _READING and not self.transport.is_closing():
            # A request whose body was being read sees a disconnect: the app records nothing.
            self.transport.close()
