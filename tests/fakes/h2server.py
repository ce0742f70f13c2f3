"""A small HTTP/2 server on asyncio and h2, for protocol fakes (cleartext h2c with prior
knowledge, or TLS with ALPN "h2"). ``handler(method, path, headers, body)`` returns
(status, headers, body bytes), or a ``Shaped`` answer (the same, sent in frames of the
shapes a server may use), or None to leave the request unanswered; it may raise
``GoAway`` (the connection ends, the request unprocessed) or ``Drop`` (the TCP connection
is closed) to script failures. The body goes out as the client's flow-control windows allow.
``running(..., seen=[])`` records the PING acknowledgements the server receives."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings


@dataclass
class Shaped:
    """An answer in frames of every shape a server may send: after a PING (``ping``), its
    body in DATA frames of at most ``frame`` bytes each padded with ``pad`` bytes, then
    ``trailers``; a long header value goes in CONTINUATION frames by itself."""

    status: int
    headers: dict[str, str]
    body: bytes
    ping: bool = False
    frame: int = 16384
    pad: int = 0
    trailers: dict[str, str] = field(default_factory=dict)


Answer = tuple[int, dict[str, str], bytes] | Shaped | None
Handler = Callable[[str, str, dict[str, str], bytes], Answer]


class GoAway(Exception):
    """Send GOAWAY: this request (and any later) was not processed."""


class Drop(Exception):
    """Close the TCP connection without a word."""


class _Protocol(asyncio.Protocol):
    def __init__(
        self, handler: Handler, max_streams: int | None = None, seen: list[str] | None = None
    ) -> None:
        self.handler = handler
        self.max_streams = max_streams
        self.seen = seen if seen is not None else []
        self.sending: dict[int, Shaped] = {}  # bodies waiting for the client's windows
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.max_streams is not None:  # in the first SETTINGS frame
            self.conn.local_settings = h2.settings.Settings(
                client=False,
                initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams},
            )
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 24)
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data)
        except Exception:
            self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                self.streams[event.stream_id] = (dict(event.headers), bytearray())  # type: ignore[arg-type]
            elif isinstance(event, h2.events.DataReceived):
                self.streams[event.stream_id][1].extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                try:
                    self._respond(event.stream_id)
                except GoAway:
                    self.conn.close_connection(last_stream_id=event.stream_id - 2)
                    self.transport.write(self.conn.data_to_send())
                    self.transport.close()
                    return
                except Drop:
                    self.transport.close()
                    return
            elif isinstance(event, h2.events.StreamReset):
                self.streams.pop(event.stream_id, None)
                self.sending.pop(event.stream_id, None)
            elif isinstance(event, h2.events.PingAckReceived):
                self.seen.append(f"ping ack {event.ping_data!r}")
            elif isinstance(event, h2.events.WindowUpdated):
                for stream_id in list(self.sending):
                    self._send_body(stream_id)
        self.transport.write(self.conn.data_to_send())

    def _respond(self, stream_id: int) -> None:
        headers, body = self.streams.pop(stream_id)
        answer = self.handler(
            headers.get(":method", ""), headers.get(":path", ""), headers, bytes(body)
        )
        if answer is None:
            return
        if isinstance(answer, Shaped):
            if answer.ping:
                self.conn.ping(b"clarion!")
            self.conn.send_headers(
                stream_id, [(":status", str(answer.status)), *answer.headers.items()]
            )
            self.sending[stream_id] = answer
            self._send_body(stream_id)
            return
        status, extra, payload = answer
        self.conn.send_headers(
            stream_id,
            [
                (":status", str(status)),
                ("content-type", "application/json"),
                ("content-length", str(len(payload))),
                *extra.items(),
            ],
        )
        self.conn.send_data(stream_id, payload, end_stream=True)

    def _send_body(self, stream_id: int) -> None:
        """As much of a shaped answer's body as the client's windows take, then its
        trailers."""
        answer = self.sending[stream_id]
        while answer.body:
            room = self.conn.local_flow_control_window(stream_id) - answer.pad - 1
            size = min(room, answer.frame, len(answer.body))
            if size <= 0:
                return  # until a WINDOW_UPDATE
            chunk, answer.body = answer.body[:size], answer.body[size:]
            self.conn.send_data(stream_id, chunk, pad_length=answer.pad or None)
        del self.sending[stream_id]
        if answer.trailers:
            self.conn.send_headers(stream_id, list(answer.trailers.items()), end_stream=True)
        else:
            self.conn.end_stream(stream_id)


async def serve(
    handler: Handler,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: ssl.SSLContext | None = None,
    max_streams: int | None = None,
    seen: list[str] | None = None,
) -> asyncio.base_events.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Protocol(handler, max_streams, seen), host, port, ssl=tls
    )


@contextmanager
def running(
    handler: Handler,
    tls: ssl.SSLContext | None = None,
    max_streams: int | None = None,
    seen: list[str] | None = None,
) -> Iterator[str]:
    """Serve on a loop of its own, on a background thread; yields the base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started = serve(handler, tls=tls, max_streams=max_streams, seen=seen)
    server = asyncio.run_coroutine_threadsafe(started, loop).result(10)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
