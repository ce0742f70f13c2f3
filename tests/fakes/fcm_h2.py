"""The fake FCM over HTTP/2 (h2c), in its own process, for ``bench/dispatch.py``: the token
endpoint on HTTP/1.1 (google-auth's transport), messages:send on HTTP/2, one shared state.

    python -m tests.fakes.fcm_h2     # prints: <token url> <h2 url> <service-account path>
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from typing import Any

from tests.fakes import fcm, h2server


def main() -> None:
    with fcm.serve() as fake:
        fake.keep_messages = False

        def handle(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
            if path == "/stats":
                return 200, {}, json.dumps({"messages": fake.sent,
                                            "refused": fake.refused[:5]}).encode()  # fmt: skip
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            status, answer, extra = fake.send(path, headers.get("authorization", ""), parsed)
            return status, extra, json.dumps(answer).encode()

        async def run() -> None:
            server = await h2server.serve(handle)
            port = server.sockets[0].getsockname()[1]
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
                json.dump(fake.service_account(), fh)
            print(fake.url, f"http://127.0.0.1:{port}", fh.name, flush=True)
            await asyncio.Event().wait()

        try:
            asyncio.run(run())
        except KeyboardInterrupt:
            sys.exit(0)


if __name__ == "__main__":
    main()
