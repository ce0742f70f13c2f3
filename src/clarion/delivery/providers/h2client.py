"""A small HTTP/2 client on asyncio and the ``h2`` protocol library, for the push providers.

Why not httpx: its HTTP/2 path costs about 1.5 ms of CPU per request here, a ceiling of a few
hundred pushes a second per worker; this client keeps one long-lived connection per provider
origin and multiplexes every request on it for a few hundred microseconds each (measured side
by side in ``bench/dispatch.py``). It does what the providers need and no more:

- ``https://`` origins: TLS with ALPN ``h2`` (certificates verified); ``http://``: cleartext
  HTTP/2 with prior knowledge (local fakes);
- as many requests in flight as the server's SETTINGS_MAX_CONCURRENT_STREAMS allows (others
  wait for a slot), flow control both ways, a timeout per request (the stream is then reset);
- GOAWAY and lost connections fail the requests they cut off with ``H2Error`` (the provider
  retries them) and the next request opens a new connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import orjson

WINDOW = 1 << 24  # our connection-level receive window


class H2Error(Exception):
    """The request got no complete answer: connection refused or lost, GOAWAY, stream reset,
    timeout. Nothing is known about whether the server acted on it."""


class Headers(dict[str, str]):
    """Response headers; names are lower case, and ``get`` takes any case."""

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass(slots=True)
class Response:
    status_code: int
    headers: Headers
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


@dataclass(slots=True)
class _Stream:
    future: asyncio.Future[Response]
    pending: bytes = b""  # body not yet sent (waiting for flow-control window)
    status: int = 0
    headers: Headers = field(default_factory=Headers)
    body: bytearray = field(default_factory=bytearray)


def _config() -> h2.config.H2Configuration:
    # We build every header ourselves (lower-case names, no connection headers), and read
    # only :status and a few names, so h2's per-header validation is skipped: it was a third
    # of the client's time.
    return h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )


class _Connection(asyncio.Protocol):
    def __init__(self, authority: bytes, scheme: bytes) -> None:
        self.authority = authority
        self.scheme = scheme
        self.h2 = h2.connection.H2Connection(config=_config())
        self.streams: dict[int, _Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.error: H2Error | None = None  # set once the connection may take no new stream
        self.slot_freed = asyncio.Event()
        self.settings_received = asyncio.Event()  # the server's limits are known
        self._flush_scheduled = False

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(WINDOW - 65535)
        self._flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._fail_all(H2Error(f"HTTP/2 protocol error: {exc}"))
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            self._handle(event)
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(H2Error(f"connection lost: {exc or 'closed by the server'}"))
        self.settings_received.set()  # nobody waits on a dead connection

    # -- events -----------------------------------------------------------------------------
    def _handle(self, event: Any) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                for name, value in event.headers:
                    if name == b":status":
                        stream.status = int(value)
                    else:
                        stream.headers[name.decode("latin-1")] = value.decode("latin-1")
        elif isinstance(event, h2.events.DataReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                stream.body += event.data
            self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None and not stream.future.done():
                stream.future.set_result(
                    Response(stream.status, stream.headers, bytes(stream.body))
                )
            self.slot_freed.set()
        elif isinstance(event, h2.events.StreamReset):
            self._fail(
                event.stream_id, H2Error(f"stream reset by the server ({event.error_code!r})")
            )
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._send_pending()
            self.slot_freed.set()
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self.settings_received.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.error = H2Error(f"GOAWAY from the server ({event.error_code!r})")
            last = event.last_stream_id or 0
            for stream_id in [s for s in self.streams if s > last]:
                self._fail(stream_id, self.error)  # never processed: safe to retry
            if not self.streams and self.transport is not None:
                self.transport.close()

    def _fail(self, stream_id: int, error: H2Error) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is not None and not stream.future.done():
            stream.future.set_exception(error)
        self.slot_freed.set()

    def _fail_all(self, error: H2Error) -> None:
        self.error = self.error or error
        for stream_id in list(self.streams):
            self._fail(stream_id, error)

    # -- sending ----------------------------------------------------------------------------
    def _flush(self) -> None:
        self._flush_scheduled = False
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _schedule_flush(self) -> None:
        """Write once per turn of the loop: many requests, one syscall."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _send_body(self, stream_id: int, stream: _Stream) -> None:
        """As much of the pending body as the flow-control windows allow, in frames."""
        while True:
            window = self.h2.local_flow_control_window(stream_id)
            size = min(window, self.h2.max_outbound_frame_size, len(stream.pending))
            if size <= 0 and stream.pending:
                return  # wait for a WINDOW_UPDATE
            chunk, stream.pending = stream.pending[:size], stream.pending[size:]
            self.h2.send_data(stream_id, chunk, end_stream=not stream.pending)
            if not stream.pending:
                return

    def _send_pending(self) -> None:
        for stream_id, stream in list(self.streams.items()):
            if stream.pending:
                self._send_body(stream_id, stream)

    def usable(self) -> bool:
        return self.error is None and self.transport is not None and not self.transport.is_closing()

    async def request(
        self,
        method: bytes,
        path: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout: float,
    ) -> Response:
        # Our own count of streams awaiting an answer (h2's open_outbound_streams walks every
        # stream on each call).
        while len(self.streams) >= self.h2.remote_settings.max_concurrent_streams:
            self.slot_freed.clear()
            if self.error is not None:
                raise self.error
            await self.slot_freed.wait()
        if self.error is not None:
            raise self.error
        try:
            stream_id = self.h2.get_next_available_stream_id()
        except h2.exceptions.NoAvailableStreamIDError:
            self.error = H2Error("stream ids used up on this connection")
            raise self.error from None
        stream = _Stream(asyncio.get_running_loop().create_future(), pending=body)
        self.streams[stream_id] = stream
        try:
            self.h2.send_headers(
                stream_id,
                [(b":method", method), (b":scheme", self.scheme), (b":authority", self.authority),
                 (b":path", path), *headers],
                end_stream=not body,
            )  # fmt: skip
            if body:
                self._send_body(stream_id, stream)
        except h2.exceptions.ProtocolError as exc:  # the connection is closing
            self.streams.pop(stream_id, None)
            self.error = self.error or H2Error(f"connection closing: {exc}")
            raise self.error from None
        self._schedule_flush()
        # A timer rather than asyncio.wait_for, which costs a task per request.
        timer = asyncio.get_running_loop().call_later(timeout, self._expire, stream_id, timeout)
        try:
            return await stream.future
        finally:
            timer.cancel()

    def _expire(self, stream_id: int, timeout: float) -> None:
        """No answer in time: fail the request, tell the server, free the slot."""
        if stream_id in self.streams:
            self._fail(stream_id, H2Error(f"no answer within {timeout:g} s"))
            if self.usable():
                self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                self._schedule_flush()


class H2Client:
    """One origin (``https://host[:port]`` or ``http://`` for prior-knowledge cleartext), one
    long-lived connection, reopened when it fails. Use it from one event loop."""

    def __init__(
        self,
        base_url: str,
        *,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 10.0,
        connect_timeout: float = 3.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) origin: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix_bytes = parts.path.rstrip("/").encode()
        self.tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.tls = (
                verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
            )
            if verify is False:
                self.tls.check_hostname = False
                self.tls.verify_mode = ssl.CERT_NONE
            self.tls.set_alpn_protocols(["h2"])
        self.authority = parts.netloc.encode()
        self.scheme = parts.scheme.encode()
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._connection: _Connection | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connect(self) -> _Connection:
        if self._connection is not None and self._connection.usable():
            return self._connection
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._connection is not None and self._connection.usable():
                return self._connection
            loop = asyncio.get_running_loop()
            try:
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: _Connection(self.authority, self.scheme), self.host, self.port,
                        ssl=self.tls, server_hostname=self.host if self.tls else None,
                    ),
                    self.connect_timeout,
                )  # fmt: skip
            except (OSError, TimeoutError, ssl.SSLError) as exc:
                raise H2Error(f"cannot connect to {self.host}:{self.port}: "
                              f"{type(exc).__name__}: {exc}") from None  # fmt: skip
            if self.tls is not None:
                transport = protocol.transport
                ssl_object = transport.get_extra_info("ssl_object") if transport else None
                if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
                    protocol.error = H2Error(f"{self.host} does not offer HTTP/2 (ALPN h2)")
                    if transport is not None:
                        transport.close()
                    raise protocol.error
            try:  # the server's SETTINGS first: how many streams it takes, its windows
                await asyncio.wait_for(protocol.settings_received.wait(), self.connect_timeout)
            except TimeoutError:
                protocol.error = H2Error(f"{self.host} sent no HTTP/2 SETTINGS")
            if protocol.error is not None:
                if protocol.transport is not None:
                    protocol.transport.close()
                raise protocol.error
            self._connection = protocol
            return protocol

    async def post(self, path: str, content: bytes, headers: Mapping[str, str]) -> Response:
        """POST to ``path`` (under the base URL). Raises H2Error when no answer came."""
        encoded = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        return await self.post_encoded(path.encode(), content, encoded)

    async def post_encoded(
        self, path: bytes, content: bytes, headers: list[tuple[bytes, bytes]]
    ) -> Response:
        """``post`` with the path and headers already encoded (names in lower case): for a
        hot loop that sends many requests with the same headers."""
        connection = self._connection
        if connection is None or not connection.usable():
            connection = await self._connect()
        return await connection.request(
            b"POST", self.prefix_bytes + path, headers, content, self.timeout
        )

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and connection.transport is not None:
            if connection.usable():
                connection.h2.close_connection()
                connection._flush()
            connection.transport.close()
