"""The fake FCM in its own process, for ``bench/dispatch.py``: the OAuth2 token endpoint
(HTTP/1.1) and messages:send over HTTP/2, served by the Python fake (``tests/fakes/fcm.py``)
or, with ``--node``, by Node's native HTTP/2 server (``fcm_h2.mjs``, same checks) so that the
fake is not what limits the measurement.

    python -m tests.fakes.fcm_h2 [--node]   # prints: <token url> <h2 url> <service-account path>
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

from tests.fakes import fcm


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the finally: stop the child
    node = "--node" in sys.argv
    with fcm.serve() as fake:
        fake.keep_messages = False
        url, child = fake.url, None
        if node:
            fake.fixed_token = f"ya29.fake-{uuid.uuid4().hex}"
            script = Path(__file__).with_suffix(".mjs")
            child = subprocess.Popen(["node", str(script), fake.project_id, fake.fixed_token],
                                     stdout=subprocess.PIPE, text=True)  # fmt: skip
            assert child.stdout is not None
            url = f"http://127.0.0.1:{child.stdout.readline().strip()}"
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
            json.dump(fake.service_account(), fh)
        print(fake.token_url, url, fh.name, flush=True)
        try:
            threading.Event().wait()
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            if child is not None:
                child.terminate()


if __name__ == "__main__":
    main()
