"""A small HTTP/2 client on asyncio, for the push providers: our own framing (RFC 9113) with
the ``hpack`` library for header compression (RFC 7541).

Why not httpx: its HTTP/2 path costs about 1.5 ms of CPU per request here, a ceiling of a few
hundred pushes a second per worker. Why not the ``h2`` protocol library, on which this client
was first built: its per-frame state machines and event objects were half of the client's
time, so that it, not FCM's quota of about 10,000 messages a second, bounded a send
(``bench/dispatch.py`` measures both side by side). A client that only sends requests and
reads their answers needs little of it. This one does what the providers need and no more:

- ``https://`` origins: TLS with ALPN ``h2`` (certificates verified); ``http://``: cleartext
  HTTP/2 with prior knowledge (local fakes);
- one long-lived connection per origin, with as many requests in flight as the server's
  SETTINGS_MAX_CONCURRENT_STREAMS allows (others wait for a slot), flow control both ways
  (the server's windows bound what is sent; ours are topped up as answers are read), a
  timeout per request (the stream is then reset), PING answered, server push refused;
- GOAWAY and lost connections fail the requests they cut off with ``H2Error`` (the provider
  retries them), as does a protocol error, and the next request opens a new connection.
"""

from __future__ import annotations

import asyncio
import ssl
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import hpack
import hpack.table
import orjson

WINDOW = 1 << 24  # our receive windows: the connection's, and each stream's (SETTINGS)
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# Frame types and flags (RFC 9113, section 6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
# Settings (section 6.5.2) and error codes (section 7).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS = 0x1, 0x2, 0x3
INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE = 0x4, 0x5
NO_ERROR, PROTOCOL_ERROR, CANCEL = 0x0, 0x1, 0x8
DEFAULT_WINDOW = 65535
DEFAULT_FRAME = 16384
MAX_STREAM_ID = (1 << 31) - 1
_FRAME = struct.Struct(">BHBBL")  # length (8 + 16 bits), type, flags, stream id
_U32 = struct.Struct(">L")
_SETTING = struct.Struct(">HL")


class H2Error(Exception):
    """The request got no complete answer: connection refused or lost, GOAWAY, stream reset,
    timeout, a protocol error. Nothing is known about whether the server acted on it."""


class _ProtocolError(Exception):
    """The server broke HTTP/2: the connection ends (GOAWAY PROTOCOL_ERROR)."""


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


_RESIZE = cast(Any, hpack.table.HeaderTable.__dict__["maxsize"]).fset


class _Table(hpack.table.HeaderTable):
    """hpack's dynamic table, counting its changes (an entry added, its size changed): an
    encoding or decoding that left the count as it was can be reused while it stays so."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return int(self._maxsize)

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        self.changes += 1
        _RESIZE(self, value)


class _Compression:
    """Header compression for one connection: hpack's encoder and decoder, each reusing its
    last result while the table it read is unchanged. Every FCM request of a project has the
    same headers, and a server's answers often the same block; hpack in Python was a fifth of
    the client's time."""

    def __init__(self) -> None:
        self.encoder = hpack.Encoder()
        self.encoder.header_table = self._sent = _Table()
        self.decoder = hpack.Decoder()
        self.decoder.header_table = self._read = _Table()
        self._encoded: tuple[list[tuple[bytes, bytes]], int, bytes] | None = None
        self._decoded: tuple[bytes, int, list[tuple[bytes, bytes]]] | None = None

    def encode(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        last = self._encoded
        if last is not None and last[1] == self._sent.changes and last[0] == headers:
            return last[2]
        changes = self._sent.changes
        resized = bool(self.encoder.table_size_changes)  # announced once, at this block's head
        block: bytes = self.encoder.encode(headers)
        same = self._sent.changes == changes and not resized
        self._encoded = (headers, changes, block) if same else None
        return block

    def decode(self, block: bytes) -> list[tuple[bytes, bytes]]:
        """Raises hpack.HPACKError."""
        last = self._decoded
        if last is not None and last[1] == self._read.changes and last[0] == block:
            return last[2]
        changes = self._read.changes
        fields = [(bytes(n), bytes(v)) for n, v in self.decoder.decode(block, raw=True)]
        self._decoded = (block, changes, fields) if self._read.changes == changes else None
        return fields


@dataclass(slots=True)
class _Stream:
    future: asyncio.Future[Response]
    window: int  # what we may still send on it (the server's window for it)
    pending: bytes = b""  # body not yet sent (waiting for flow-control window)
    status: int = 0  # 0 until the final (non-1xx) response headers
    headers: Headers = field(default_factory=Headers)
    body: bytearray = field(default_factory=bytearray)
    unacked: int = 0  # body bytes read since its receive window was last topped up


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return _FRAME.pack(size >> 16, size & 0xFFFF, kind, flags, stream_id) + payload


class _Connection(asyncio.Protocol):
    def __init__(self, authority: bytes, scheme: bytes) -> None:
        self.authority = authority
        self.scheme = scheme
        self.streams: dict[int, _Stream] = {}
        self.transport: asyncio.Transport | None = None
        self.error: H2Error | None = None  # set once the connection may take no new stream
        self.slot_freed = asyncio.Event()
        self.settings_received = asyncio.Event()  # the server's limits are known
        self._flush_scheduled = False
        self._out = bytearray()  # frames to write at the next flush
        self._in = b""  # an incomplete frame
        self._hpack = _Compression()
        self._block: tuple[int, int, bytearray] | None = None  # headers awaiting CONTINUATION
        self._next_id = 1
        self._unacked = 0  # body bytes read on the connection since its window was topped up
        # The server's settings and our connection-level send window.
        self.max_streams = 100  # until its SETTINGS say
        self._max_frame = DEFAULT_FRAME
        self._initial_window = DEFAULT_WINDOW
        self._window = DEFAULT_WINDOW

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        settings = b"".join(
            _SETTING.pack(key, value)
            for key, value in ((ENABLE_PUSH, 0), (INITIAL_WINDOW_SIZE, WINDOW))
        )
        self._out += PREFACE + _frame(SETTINGS, 0, 0, settings)
        self._out += _frame(WINDOW_UPDATE, 0, 0, _U32.pack(WINDOW - DEFAULT_WINDOW))
        self._flush()

    def data_received(self, data: bytes) -> None:
        buffer = self._in + data if self._in else data
        end, size = 0, len(buffer)
        try:
            while size - end >= 9:
                high, low, kind, flags, stream_id = _FRAME.unpack_from(buffer, end)
                start = end + 9
                stop = start + ((high << 16) | low)
                if stop > size:
                    break
                end = stop
                self._received(kind, flags, stream_id & MAX_STREAM_ID, buffer[start:stop])
        except _ProtocolError as exc:
            self._fail_all(H2Error(f"HTTP/2 protocol error: {exc}"))
            self._out += _frame(GOAWAY, 0, 0, _U32.pack(0) + _U32.pack(PROTOCOL_ERROR))
            self._flush()
            if self.transport is not None:
                self.transport.close()
            return
        self._in = buffer[end:]
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_all(H2Error(f"connection lost: {exc or 'closed by the server'}"))
        self.settings_received.set()  # nobody waits on a dead connection

    # -- frames -----------------------------------------------------------------------------
    def _received(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._block is not None and kind != CONTINUATION:
            raise _ProtocolError("a header block was cut off by another frame")
        if kind == DATA:
            self._data(flags, stream_id, payload)
        elif kind == HEADERS:
            if flags & PADDED:
                payload = _unpad(payload)
            if flags & PRIORITY_FLAG:
                payload = payload[5:]
            if flags & END_HEADERS:
                self._headers(flags, stream_id, payload)
            else:
                self._block = (stream_id, flags, bytearray(payload))
        elif kind == CONTINUATION:
            if self._block is None or self._block[0] != stream_id:
                raise _ProtocolError("CONTINUATION without its HEADERS")
            self._block[2].extend(payload)
            if flags & END_HEADERS:
                _, first_flags, block = self._block
                self._block = None
                self._headers(first_flags, stream_id, bytes(block))
        elif kind == RST_STREAM:
            code = _U32.unpack_from(payload)[0] if len(payload) == 4 else PROTOCOL_ERROR
            self._fail(stream_id, H2Error(f"stream reset by the server (error code {code})"))
        elif kind == SETTINGS:
            if not flags & ACK:
                self._settings(payload)
        elif kind == PING:
            if not flags & ACK:
                self._out += _frame(PING, ACK, 0, payload)
        elif kind == GOAWAY:
            self._goaway(payload)
        elif kind == WINDOW_UPDATE:
            self._window_update(stream_id, payload)
        elif kind == PUSH_PROMISE:
            raise _ProtocolError("server push, which our SETTINGS turned off")
        # PRIORITY and unknown frame types are ignored, as the protocol asks.

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        # The whole payload counts against the windows, padding included.
        self._unacked += len(payload)
        if self._unacked >= WINDOW // 2:
            self._out += _frame(WINDOW_UPDATE, 0, 0, _U32.pack(self._unacked))
            self._unacked = 0
        stream = self.streams.get(stream_id)
        if stream is None:
            return  # a stream we reset or timed out: its data is dropped
        stream.body += _unpad(payload) if flags & PADDED else payload
        if flags & END_STREAM:
            self._end(stream_id, stream)
            return
        stream.unacked += len(payload)
        if stream.unacked >= WINDOW // 2:
            self._out += _frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(stream.unacked))
            stream.unacked = 0

    def _headers(self, flags: int, stream_id: int, block: bytes) -> None:
        try:  # every block, so that the decoder's table stays the server's
            fields = self._hpack.decode(block)
        except hpack.HPACKError as exc:
            raise _ProtocolError(f"header block: {exc}") from None
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        if stream.status == 0:  # the response's headers (or an interim 1xx's)
            headers = Headers()
            status = 0
            for name, value in fields:
                if name == b":status":
                    status = int(value)
                else:
                    headers[name.decode("latin-1")] = value.decode("latin-1")
            if status >= 200:
                stream.status, stream.headers = status, headers
        # Trailers (headers after the body) end the stream and are not read.
        if flags & END_STREAM:
            self._end(stream_id, stream)

    def _end(self, stream_id: int, stream: _Stream) -> None:
        del self.streams[stream_id]
        if not stream.future.done():
            stream.future.set_result(Response(stream.status, stream.headers, bytes(stream.body)))
        self.slot_freed.set()

    def _settings(self, payload: bytes) -> None:
        if len(payload) % 6:
            raise _ProtocolError("a SETTINGS frame of the wrong size")
        for offset in range(0, len(payload), 6):
            key, value = _SETTING.unpack_from(payload, offset)
            if key == MAX_CONCURRENT_STREAMS:
                self.max_streams = value
            elif key == INITIAL_WINDOW_SIZE:
                if value > MAX_STREAM_ID:
                    raise _ProtocolError("an initial window over 2^31-1")
                for stream in self.streams.values():  # open streams' windows move with it
                    stream.window += value - self._initial_window
                self._initial_window = value
            elif key == MAX_FRAME_SIZE:
                self._max_frame = value
            elif key == HEADER_TABLE_SIZE:
                self._hpack.encoder.header_table_size = value
        self._out += _frame(SETTINGS, ACK, 0)
        self.settings_received.set()
        self._send_pending()
        self.slot_freed.set()

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise _ProtocolError("a WINDOW_UPDATE frame of the wrong size")
        increment = _U32.unpack_from(payload)[0] & MAX_STREAM_ID
        if stream_id == 0:
            self._window += increment
        elif (stream := self.streams.get(stream_id)) is not None:
            stream.window += increment
        self._send_pending()

    def _goaway(self, payload: bytes) -> None:
        last, code = struct.unpack_from(">LL", payload) if len(payload) >= 8 else (0, 0)
        self.error = H2Error(f"GOAWAY from the server (error code {code})")
        for stream_id in [s for s in self.streams if s > last & MAX_STREAM_ID]:
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
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(bytes(self._out))
        self._out.clear()

    def _schedule_flush(self) -> None:
        """Write once per turn of the loop: many requests, one syscall."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _send_body(self, stream_id: int, stream: _Stream) -> None:
        """As much of the pending body as the flow-control windows allow, in frames."""
        while stream.pending:
            size = min(self._window, stream.window, self._max_frame, len(stream.pending))
            if size <= 0:
                return  # wait for a WINDOW_UPDATE
            chunk, stream.pending = stream.pending[:size], stream.pending[size:]
            self._window -= size
            stream.window -= size
            self._out += _frame(DATA, 0 if stream.pending else END_STREAM, stream_id, chunk)

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
        while len(self.streams) >= self.max_streams:
            self.slot_freed.clear()
            if self.error is not None:
                raise self.error
            await self.slot_freed.wait()
        if self.error is not None:
            raise self.error
        stream_id = self._next_id
        if stream_id > MAX_STREAM_ID:
            self.error = H2Error("stream ids used up on this connection")
            raise self.error
        self._next_id += 2
        stream = _Stream(
            asyncio.get_running_loop().create_future(), self._initial_window, pending=body
        )
        self.streams[stream_id] = stream
        block = self._hpack.encode(
            [(b":method", method), (b":scheme", self.scheme), (b":authority", self.authority),
             (b":path", path), *headers],
        )  # fmt: skip
        flags = 0 if body else END_STREAM
        most = self._max_frame
        if len(block) <= most:
            self._out += _frame(HEADERS, flags | END_HEADERS, stream_id, block)
        else:  # a block bigger than a frame: HEADERS, then CONTINUATION frames
            self._out += _frame(HEADERS, flags, stream_id, block[:most])
            for at in range(most, len(block), most):
                last = at + most >= len(block)
                self._out += _frame(
                    CONTINUATION, END_HEADERS if last else 0, stream_id, block[at : at + most]
                )
        if body:
            self._send_body(stream_id, stream)
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
                self._out += _frame(RST_STREAM, 0, stream_id, _U32.pack(CANCEL))
                self._schedule_flush()

    def close(self) -> None:
        """GOAWAY (no error), then close."""
        if self.usable():  # the last stream of the server's we took: none
            self._out += _frame(GOAWAY, 0, 0, _U32.pack(0) + _U32.pack(NO_ERROR))
            self._flush()
        if self.transport is not None:
            self.transport.close()


def _unpad(payload: bytes) -> bytes:
    """A PADDED frame's payload without its pad length byte and padding."""
    if not payload or payload[0] >= len(payload):
        raise _ProtocolError("padding longer than the frame")
    return payload[1 : len(payload) - payload[0]]


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
        if connection is not None:
            connection.close()
