"""The plain script: trigger a campaign once and print the trigger id.

    CLIX_PROJECT_ID=... CLIX_API_KEY=... CLIX_BASE_URL=http://127.0.0.1:8080 \\
        python examples/trigger_script.py CAMPAIGN_ID store_location=Gangnam order_id=A-1
"""

from __future__ import annotations

import logging
import sys

from clarion_client import Client, ClixError

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")


def main(campaign_id: str, pairs: list[str]) -> int:
    properties = dict(pair.split("=", 1) for pair in pairs)
    with Client() as clix:  # credentials from the environment; finite timeouts; retries
        try:
            result = clix.trigger_campaign(campaign_id, properties=properties)
        except ClixError as exc:  # typed: status, code, message, request id; never the key
            print(f"trigger failed: {exc}", file=sys.stderr)
            return 1
    print(result.trigger_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1], sys.argv[2:]))
