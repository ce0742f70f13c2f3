"""A FastAPI order endpoint that alerts a store's staff when a pickup order comes in.

    CLIX_PROJECT_ID=... CLIX_API_KEY=... CLIX_BASE_URL=... PICKUP_CAMPAIGN_ID=... \\
        uvicorn examples.order_endpoint:app

The order id is the dedupe key: a client that retries its POST does not alert twice.
"""

from __future__ import annotations

import os

from clarion_client import Client, ClixError
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

app = FastAPI()
clix = Client()  # one client for the process: pooled connections


class Order(BaseModel):
    order_id: str
    store_location: str
    customer_name: str
    item_count: int


@app.post("/orders")
def create_order(order: Order) -> dict[str, str | bool]:
    # ... save the order first; then tell the store.
    try:
        result = clix.trigger_campaign(
            os.environ["PICKUP_CAMPAIGN_ID"],
            properties=order.model_dump(),
            dedupe_key=f"pickup-{order.order_id}",
            correlation_id=order.order_id,
            timeout=5,
        )
    except ClixError as exc:
        # The order is saved; the alert failed. Report it, do not fail the order.
        raise HTTPException(502, f"order saved, staff alert failed: {exc.message}") from None
    return {"order_id": order.order_id, "trigger_id": result.trigger_id,
            "duplicate": result.duplicate}  # fmt: skip
