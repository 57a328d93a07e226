"""uvicorn's HTTP/1.1 protocol (h11) with a header-read timeout. uvicorn 0.54 has none: its keep-alive timer
(``timeout_keep_alive``) only runs between requests and stops at a request's first byte, and a new connection has
no timer at all, so a client that sends its headers a byte at a time holds a connection for as long as it likes."""
import asyncio
from typing import Any, Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderTimeout(H11Protocol):
    """Closes a connection whose request line and headers are not all in ``header_timeout`` seconds after it opened
    or after its previous answer (a slow body is the request's ``--timeout``'s)."""

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.header_timer: Optional[asyncio.TimerHandle] = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in (or the request was refused)
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def _expired(self) -> None:
        self.header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.logger.warning("closed a connection whose request headers took over %g s (--header-timeout)",
                                self.header_timeout)
            self.transport.close()
