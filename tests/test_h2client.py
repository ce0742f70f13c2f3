"""The providers' HTTP/2 client against local HTTP/2 servers (h2c and TLS): many requests on
one connection within the server's stream limit, flow control on a large body, and each way
an answer can fail to come (timeout, dropped connection, GOAWAY, no ALPN h2) ending in
H2Error, with the next request on a fresh connection."""

from __future__ import annotations

import asyncio
import random
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any

import hpack
import pytest

from clarion.delivery.providers import h2client
from clarion.delivery.providers.h2client import H2Client, H2Error
from tests.fakes import h2server, tlscert


class Script:
    """A handler that counts concurrency and connections and follows a script by path."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.paths: list[str] = []

    def __call__(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        with self.lock:
            self.paths.append(path)
        if path == "/hang":
            return None
        if path == "/drop":
            raise h2server.Drop
        if path == "/goaway":
            raise h2server.GoAway
        if path == "/shaped":  # a PING first, a long header, a padded body in frames, trailers
            return h2server.Shaped(200, {"x-long": "v" * 20_000}, b"0123456789" * 5_000,
                                   ping=True, frame=1_000, pad=7,
                                   trailers={"x-end": "1"})  # fmt: skip
        if path.startswith("/large/"):  # a body far larger than the client's windows
            return h2server.Shaped(200, {}, b"z" * int(path.split("/")[2]), frame=16_000)
        return 200, {"x-seen": str(len(body))}, b'{"ok": true, "method": "%s"}' % method.encode()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_many_requests_share_one_connection_within_the_stream_limit() -> None:
    script = Script()
    with h2server.running(script, max_streams=8) as url:

        async def go() -> list[Any]:
            client = H2Client(url)
            try:
                return await asyncio.gather(
                    *(client.post(f"/n/{i}", b"{}", {"Content-Type": "x"}) for i in range(300))
                )
            finally:
                await client.aclose()

        answers = run(go())
    assert [a.status_code for a in answers] == [200] * 300
    assert answers[0].json() == {"ok": True, "method": "POST"}
    assert answers[0].headers.get("X-Seen") == "2"  # any case
    assert sorted(script.paths) == sorted(f"/n/{i}" for i in range(300))


def test_a_body_larger_than_the_flow_control_window() -> None:
    with h2server.running(Script()) as url:

        async def go() -> Any:
            client = H2Client(url)
            try:
                return await client.post("/big", b"x" * 300_000, {})
            finally:
                await client.aclose()

        answer = run(go())
    assert answer.status_code == 200 and answer.headers.get("x-seen") == "300000"


def test_frames_of_every_shape_a_server_may_send() -> None:
    """A header block continued in CONTINUATION frames, padded DATA frames, trailers, and a
    PING from the server, which the client acknowledges."""
    seen: list[str] = []
    with h2server.running(Script(), seen=seen) as url:

        async def go() -> Any:
            client = H2Client(url)
            try:
                first = await client.post("/shaped", b"{}", {})
                return first, await client.post("/ok", b"{}", {})  # the connection still works
            finally:
                await client.aclose()

        shaped, after = run(go())
    assert shaped.status_code == 200
    assert shaped.headers.get("x-long") == "v" * 20_000
    assert shaped.content == b"0123456789" * 5_000
    assert after.status_code == 200 and after.json()["ok"] is True
    assert seen == ["ping ack b'clarion!'"]


def test_answers_larger_than_the_clients_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client tops up its windows (the connection's and each stream's) as it reads: with
    windows of 128 KiB, answers of 1 MB each, several at once, all arrive whole."""
    monkeypatch.setattr(h2client, "WINDOW", 1 << 17)
    with h2server.running(Script()) as url:

        async def go() -> list[Any]:
            client = H2Client(url, timeout=10)
            try:
                return await asyncio.gather(
                    *(client.post(f"/large/{1_000_000 + i}", b"{}", {}) for i in range(4))
                )
            finally:
                await client.aclose()

        answers = run(go())
    assert [len(a.content) for a in answers] == [1_000_000 + i for i in range(4)]
    assert {a.content[:1] for a in answers} == {b"z"}


def test_failures_raise_h2error_and_the_next_request_reconnects() -> None:
    with h2server.running(Script()) as url:

        async def go() -> list[str]:
            client = H2Client(url, timeout=0.3)
            seen: list[str] = []
            try:
                for path in ("/hang", "/ok", "/drop", "/ok", "/goaway", "/ok"):
                    try:
                        answer = await client.post(path, b"{}", {})
                        seen.append(f"{path} {answer.status_code}")
                    except H2Error as exc:
                        seen.append(f"{path} H2Error: {exc}")
            finally:
                await client.aclose()
            return seen

        seen = run(go())
    assert seen[0] == "/hang H2Error: no answer within 0.3 s"
    assert seen[1] == "/ok 200"  # the same connection: the hung stream was reset
    assert seen[2].startswith("/drop H2Error: connection lost")
    assert seen[3] == "/ok 200"  # a new connection
    assert seen[4].startswith("/goaway H2Error: GOAWAY")
    assert seen[5] == "/ok 200"


def test_tls_with_alpn_h2_and_certificates_checked() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        context, ca_file = tlscert.server_context(Path(tmp), alpn=["h2"])
        plain, _ = tlscert.server_context(Path(tmp) / "..", alpn=None)
        with (
            h2server.running(Script(), tls=context) as url,
            h2server.running(Script(), tls=plain) as no_h2,
        ):

            async def go(base: str, verify: Any) -> Any:
                client = H2Client(base, verify=verify)
                try:
                    return await client.post("/ok", b"{}", {})
                finally:
                    await client.aclose()

            trusted = ssl.create_default_context(cafile=ca_file)
            assert run(go(url, trusted)).status_code == 200
            with pytest.raises(H2Error, match="CERTIFICATE_VERIFY_FAILED"):
                run(go(url, True))  # the system's trust store does not know the fake
            with pytest.raises(H2Error, match="does not offer HTTP/2"):
                run(
                    go(no_h2, ssl.create_default_context(cafile=str(Path(tmp) / ".." / "cert.pem")))
                )


def test_a_refused_connection_is_an_h2error() -> None:
    async def go() -> Any:
        return await H2Client("http://127.0.0.1:9", connect_timeout=1).post("/", b"", {})

    with pytest.raises(H2Error, match=r"cannot connect to 127\.0\.0\.1:9"):
        run(go())


def test_header_compression_reuse_matches_hpack_over_random_sequences() -> None:
    """The client reuses its last encoding (and decoding) while the table is unchanged: over
    random runs of repeated and new header lists, with table size changes, what a plain hpack
    decoder reads of our blocks, and what we read of a plain hpack encoder's, is exact."""
    rng = random.Random(7)
    ours = h2client._Compression()
    peer_decoder, peer_encoder = hpack.Decoder(), hpack.Encoder()
    lists = [
        [(b":method", b"POST"), (b":path", b"/v1/projects/p%d/messages:send" % (i % 3)),
         (b"authorization", b"Bearer " + b"t" * rng.randint(20, 900)),
         (b"content-type", b"application/json")]
        for i in range(6)
    ]  # fmt: skip
    # A table grown with every header still in it: the size update goes in the next block
    # only, not in the blocks that reuse it.
    short = [(b":path", b"/v1/projects/p/messages:send"), (b"authorization", b"Bearer t")]
    ours.encoder.header_table_size = peer_encoder.header_table_size = 1024
    for expected in (True, False, False):  # the first announces 1024 and adds the entries
        block = ours.encode(short)
        assert (block[0] & 0xE0 == 0x20) == expected
        assert peer_decoder.decode(block, raw=True) == short
    ours.encoder.header_table_size = 4096
    blocks = [ours.encode(short) for _ in range(3)]
    assert [b[0] & 0xE0 == 0x20 for b in blocks] == [True, False, False]
    assert [peer_decoder.decode(b, raw=True) for b in blocks] == [short] * 3
    resized, current, again = False, 4096, 0
    for step in range(3_000):
        roll = rng.random()
        if roll < 0.02:  # the peer's table size changes (SETTINGS, or an update in a block)
            size = rng.choice([0, 256, 1024, 4096])
            ours.encoder.header_table_size = size
            peer_encoder.header_table_size = size
            resized, current, again = resized or size != current, size, 3
        headers = rng.choice(lists) if roll < 0.8 else [(b"x-n", b"%d" % step), *lists[0]]
        if again:  # after a resize, the same headers three times: the reused block too
            headers, again = lists[1], again - 1
        block = ours.encode(headers)
        assert peer_decoder.decode(block, raw=True) == headers
        # A size update (first bits 001) comes once, in the first block after the change.
        assert (block[0] & 0xE0 == 0x20) == resized
        resized = False
        answer = rng.choice(lists[:2]) if roll < 0.9 else [(b"date", b"%d" % step)]
        assert ours.decode(peer_encoder.encode(answer)) == answer
