"""The uvicorn server for the app, with a deadline on request headers.

uvicorn times out idle keep-alive connections, but not a client that sends part of a request
line or header and then waits: it cancels the keep-alive timer on the first byte and never
arms another, so a slowloris client holds a socket for ever. `with_header_timeout` wraps
uvicorn's HTTP protocol (h11, or httptools when installed) so that a connection must complete
each request's headers within `timeout` seconds of connecting or of its previous response;
otherwise it is closed. The same deadline bounds how long the rest of a refused body is read
and discarded after an early 401/413. Bodies are timed by `guard.RequestGuard`; header size
is h11's own limit (16 KiB, answered with a 400).
"""

from __future__ import annotations

import asyncio


def with_header_timeout(base: type[asyncio.Protocol], timeout: float) -> type[asyncio.Protocol]:
    """A subclass of uvicorn's protocol `base` that closes connections whose headers are late."""

    class HeaderTimeoutProtocol(base):  # type: ignore[misc, valid-type]
        _header_timer: asyncio.TimerHandle | None = None
        _timed_cycle: object = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def data_received(self, data: bytes) -> None:
            # Between requests (none yet, or the last one answered), bytes start a new request
            # whose headers must arrive in time; a timer left from an earlier request is renewed.
            between = self.cycle is None or self.cycle.response_complete
            if between and (self._header_timer is None or self._timed_cycle is not self.cycle):
                self._arm_header_timer()
            super().data_received(data)

        def connection_lost(self, exc) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._timed_cycle = self.cycle
            self._header_timer = self.loop.call_later(timeout, self._headers_late)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            # A new cycle means the headers came in time; the same one means they did not.
            if self.cycle is self._timed_cycle and not self.transport.is_closing():
                self.logger.info(
                    "closing a connection whose request headers took over %g s", timeout
                )
                self.transport.close()

    HeaderTimeoutProtocol.__name__ = f"HeaderTimeout{base.__name__}"
    return HeaderTimeoutProtocol


def server_config(
    app,
    *,
    host: str,
    port: int,
    read_timeout: float,
    log_level: str = "info",
    access_log: bool = True,
    timeout_keep_alive: int = 5,
):
    """A `uvicorn.Config` serving `app` with the header deadline `read_timeout`."""
    import uvicorn
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        timeout_keep_alive=timeout_keep_alive,
        http=with_header_timeout(AutoHTTPProtocol, read_timeout),
    )
