"""The async client: trigger, then follow the trigger until it completes.

    CLIX_PROJECT_ID=... CLIX_API_KEY=... CLIX_BASE_URL=... \\
        python examples/async_trigger.py CAMPAIGN_ID STORE
"""

from __future__ import annotations

import asyncio
import sys

from clarion_client import AsyncClient


async def main(campaign_id: str, store: str) -> None:
    async with AsyncClient() as clix:
        result = await clix.trigger_campaign(
            campaign_id, broadcast=True, properties={"store_location": store, "order_id": "A-7"}
        )
        status = await clix.wait_for_trigger(result.trigger_id, timeout=30)
        print(result.trigger_id, status.status, status.counts["sent"])


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
