"""FCM dispatch rate: N messages through Clarion's FCM provider to the fake FCM over HTTP/2
on loopback (in its own process), beside the floor measured in the same run: a bare httpx
HTTP/2 loop sending the same requests, with the same concurrency, to the same fake.

    python bench/dispatch.py [--messages 100000] [--concurrency 64] [--batch 500]

Targets: >= 70% of the bare loop's rate, >= 3,000 messages/s from one process, and nothing
lost (every message answered as sent, and the fake counted each once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson

from clarion.delivery.providers.base import OutboundPush
from clarion.delivery.providers.fcm import FcmProvider, fcm_message

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the fake lives under tests/


def message(i: int) -> OutboundPush:
    push = OutboundPush(
        project_id="bench", message_id=f"m-{i}", device_id=f"d-{i}", platform="ANDROID",
        push_token=f"ok-{i}", title="New pickup order", body=f"Order #{i} is ready",
        image_url="", landing_url="",
    )  # fmt: skip
    push.data.update({"message_id": push.message_id, "title": push.title, "body": push.body})
    return push


def stats(url: str) -> dict[str, object]:
    async def get() -> dict[str, object]:
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            return dict((await client.get(f"{url}/stats")).json())

    return asyncio.run(get())


def bare(url: str, token: str, pushes: list[OutboundPush], concurrency: int) -> float:
    """The floor: the same requests from a plain httpx HTTP/2 loop."""
    bodies = [orjson.dumps({"message": fcm_message(p)}) for p in pushes]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def run() -> float:
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(http1=False, http2=True, limits=limits) as client:
            gate = asyncio.Semaphore(concurrency)

            async def one(body: bytes) -> None:
                async with gate:
                    r = await client.post(f"{url}/v1/projects/fake-project/messages:send",
                                          content=body, headers=headers)  # fmt: skip
                    assert r.status_code == 200, r.text

            started = time.perf_counter()
            await asyncio.gather(*(one(b) for b in bodies))
            return time.perf_counter() - started

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.fcm_h2"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert fake.stdout is not None
        token_url, url, account_path = fake.stdout.readline().split()
        account = json.loads(Path(account_path).read_text())
        provider = FcmProvider(url, lambda project_id: account, concurrency=args.concurrency,
                               h2c=True)  # fmt: skip
        pushes = [message(i) for i in range(args.messages)]
        provider.send(pushes[:10])  # the token and the connection, outside the timing
        started = time.perf_counter()
        sent = 0
        for i in range(10, len(pushes), args.batch):
            results = provider.send(pushes[i : i + args.batch])
            sent += sum(r.outcome == "sent" for r in results)
        ours = time.perf_counter() - started
        token = provider._tokens["bench"][1].token  # the same token for the floor
        provider.close()
        counted = int(str(stats(url)["messages"]))
        floor = bare(url, str(token), pushes[10:], args.concurrency)
        n = len(pushes) - 10
        print(f"FCM dispatch: {n:,} messages, HTTP/2 to the fake FCM on loopback (own process), "
              f"{args.concurrency} in flight, batches of {args.batch}")  # fmt: skip
        print(f"  clarion provider: {n / ours:,.0f} messages/s ({ours:.1f} s)")
        print(f"  bare httpx loop:  {n / floor:,.0f} messages/s ({floor:.1f} s) (the floor)")
        print(f"  ratio: {floor / ours:.2f} of the floor (target >= 0.70); "
              f"target >= 3,000 messages/s")  # fmt: skip
        print(f"  nothing lost: {sent + 10:,} answered sent, the fake counted {counted:,} "
              f"of {len(pushes):,}")  # fmt: skip
        _ = token_url
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    main()
