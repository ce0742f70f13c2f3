"""FCM dispatch rate: N messages through Clarion's FCM provider to the fake FCM over HTTP/2
on loopback (in its own process), beside loops measured in the same run against the same
fake with the same concurrency: a bare httpx HTTP/2 loop, and a bare loop on the h2 protocol
library with no client logic at all (the floor while Clarion's client was built on h2; its
own framing now goes past it).

    python bench/dispatch.py [--messages 100000] [--concurrency 64] [--batch 2000]
                             [--fake node|python]

The fake is Node's native HTTP/2 server when node is installed (a pure-Python HTTP/2 server
tops out below the client being measured), else the Python fake.

Targets: >= 70% of the bare loop's rate, >= 3,000 messages/s from one process, and nothing
lost (every message answered as sent, and the fake counted each once).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events
import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake lives under tests/

from clarion.delivery.providers.base import OutboundPush  # noqa: E402
from clarion.delivery.providers.fcm import FcmProvider, fcm_message  # noqa: E402
from clarion.delivery.providers.http2 import new_loop  # noqa: E402

PATH = "/v1/projects/fake-project/messages:send"


def message(i: int) -> OutboundPush:
    push = OutboundPush(
        project_id="bench", message_id=f"m-{i}", device_id=f"d-{i}", platform="ANDROID",
        push_token=f"ok-{i}", title="New pickup order", body=f"Order #{i} is ready",
        image_url="", landing_url="",
    )  # fmt: skip
    push.data.update({"message_id": push.message_id, "title": push.title, "body": push.body})
    return push


def stats(url: str) -> dict[str, Any]:
    async def get() -> dict[str, Any]:
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            return dict((await client.get(f"{url}/stats")).json())

    return asyncio.run(get())


def bare_httpx(url: str, bodies: list[bytes], headers: dict[str, str], concurrency: int) -> float:
    async def run() -> float:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(http1=False, http2=True, limits=limits) as client:
            gate = asyncio.Semaphore(concurrency)

            async def one(body: bytes) -> None:
                async with gate:
                    r = await client.post(url + PATH, content=body, headers=headers)
                    assert r.status_code == 200, r.text

            started = time.perf_counter()
            await asyncio.gather(*(one(b) for b in bodies))
            return time.perf_counter() - started

    return asyncio.run(run())


class _Bare(asyncio.Protocol):
    """The h2 library and nothing else: one connection, requests written as they come."""

    def __init__(self) -> None:
        config = h2.config.H2Configuration(
            client_side=True, header_encoding=None, validate_outbound_headers=False,
            normalize_outbound_headers=False, validate_inbound_headers=False,
            normalize_inbound_headers=False,
        )  # fmt: skip
        self.conn = h2.connection.H2Connection(config)
        self.waiting: dict[int, asyncio.Future[int]] = {}
        self.status: dict[int, int] = {}
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 24)
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                self.status[event.stream_id] = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.waiting.pop(event.stream_id).set_result(self.status.pop(event.stream_id))
        self.transport.write(self.conn.data_to_send())

    async def post(self, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers)
        self.conn.send_data(stream_id, body, end_stream=True)
        self.transport.write(self.conn.data_to_send())
        future = asyncio.get_running_loop().create_future()
        self.waiting[stream_id] = future
        return await future


def bare_h2(url: str, bodies: list[bytes], token: str, concurrency: int) -> float:
    parts = urlsplit(url)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Bare, parts.hostname, parts.port)
        gate = asyncio.Semaphore(concurrency)
        base = [
            (b":method", b"POST"), (b":scheme", b"http"), (b":authority", parts.netloc.encode()),
            (b":path", PATH.encode()), (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", b"application/json"),
        ]  # fmt: skip

        async def one(body: bytes) -> None:
            async with gate:
                status = await protocol.post([*base, (b"content-length", b"%d" % len(body))], body)
                assert status == 200

        started = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        elapsed = time.perf_counter() - started
        protocol.transport.close()
        return elapsed

    return new_loop().run_until_complete(run())  # the event loop the providers use


@contextmanager
def fake_server(kind: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """The fake FCM in its own process (Node's HTTP/2 server when node is installed, else
    the Python fake): yields its messages:send base URL and a service account it accepts."""
    kind = kind or ("node" if shutil.which("node") else "python")
    command = [sys.executable, "-m", "tests.fakes.fcm_h2"] + (["--node"] * (kind == "node"))
    fake = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        _token_url, url, account_path = fake.stdout.readline().split()
        yield url, json.loads(Path(account_path).read_text())
    finally:
        fake.terminate()
        fake.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=2000)  # the runner delivers ~2,000 at once
    parser.add_argument("--fake", choices=("node", "python"),
                        default="node" if shutil.which("node") else "python")  # fmt: skip
    args = parser.parse_args()
    with fake_server(args.fake) as (url, account):
        provider = FcmProvider(url, lambda project_id: account, concurrency=args.concurrency)
        pushes = [message(i) for i in range(args.messages)]
        bodies = [orjson.dumps({"message": fcm_message(p)}) for p in pushes[10:]]  # for floors
        # A worker holds one batch at a time, not 100,000 prepared messages: keep those out
        # of the garbage collector's full passes, for every loop measured here.
        gc.freeze()
        provider.send(pushes[:10])  # the token and the connection, outside the timing
        started = time.perf_counter()
        sent = 0
        for i in range(10, len(pushes), args.batch):
            results = provider.send(pushes[i : i + args.batch])
            sent += sum(r.outcome == "sent" for r in results)
        ours = time.perf_counter() - started
        token = str(provider._tokens["bench"][1].token)  # the same token for the floors
        provider.close()
        counted = int(stats(url)["messages"])
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        floor_h2 = bare_h2(url, bodies, token, args.concurrency)
        n, n_httpx = len(bodies), min(len(bodies), max(2000, len(bodies) // 20))  # httpx: slow
        floor_httpx = bare_httpx(url, bodies[:n_httpx], headers, args.concurrency)
        print(f"FCM dispatch: {n:,} messages, HTTP/2 to the fake FCM ({args.fake}) on loopback "
              f"in its own process, {args.concurrency} in flight, "
              f"batches of {args.batch}")  # fmt: skip
        print(f"  clarion provider:  {n / ours:,.0f} messages/s ({ours:.1f} s)")
        print(f"  bare h2 loop:      {n / floor_h2:,.0f} messages/s ({floor_h2:.1f} s) "
              f"(the h2 library alone)")  # fmt: skip
        print(f"  bare httpx loop:   {n_httpx / floor_httpx:,.0f} messages/s "
              f"({n_httpx:,} messages in {floor_httpx:.1f} s)")  # fmt: skip
        print(f"  ratio: {floor_h2 / ours:.2f} of the bare h2 loop, "
              f"{(n_httpx / floor_httpx) and (n / ours) / (n_httpx / floor_httpx):.1f}x the bare "
              f"httpx loop (target >= 0.70); target >= 3,000 messages/s")  # fmt: skip
        print(f"  nothing lost: {sent + 10:,} answered sent, the fake counted {counted:,} "
              f"of {len(pushes):,}")  # fmt: skip


if __name__ == "__main__":
    main()
