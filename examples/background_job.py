"""A background job (at-least-once, like most job runners) that may run twice for the same
order: the dedupe key in a shared store (SQL here; Redis works the same) makes the second run
return the first run's trigger id without sending.

    CLIX_PROJECT_ID=... CLIX_API_KEY=... CLIX_BASE_URL=... \\
        python examples/background_job.py CAMPAIGN_ID ORDER_ID STORE DEDUPE_DB_URL
"""

from __future__ import annotations

import sys

from clarion_client import Client, SQLDedupe
from sqlalchemy import create_engine


def send_pickup_alert(clix: Client, campaign_id: str, order_id: str, store: str) -> str:
    result = clix.trigger_campaign(
        campaign_id,
        properties={"store_location": store, "order_id": order_id},
        dedupe_key=f"pickup-{order_id}",
        correlation_id=order_id,
    )
    return f"{result.trigger_id} {'duplicate' if result.duplicate else 'sent'}"


if __name__ == "__main__":
    campaign_id, order_id, store, db_url = sys.argv[1:5]
    with Client(dedupe=SQLDedupe(create_engine(db_url))) as clix:
        print(send_pickup_alert(clix, campaign_id, order_id, store))  # the job's first run
        print(send_pickup_alert(clix, campaign_id, order_id, store))  # a redelivery
