"""`clarion mcp`: started as a subprocess and driven with the mcp SDK's own stdio client against
a live Clarion on a real port, through the seed's workflow on the store-pickup demo."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from sqlalchemy import func, select

from clarion.app import create_app
from clarion.auth.keys import find_keys
from clarion.demo_data.seed import SAMPLE_PROPERTIES, ensure_demo
from clarion.mcp_server import docs
from clarion.storage.db import Database
from clarion.storage.models import Trigger
from tests.conftest import Server

CLARION = str(Path(sys.executable).with_name("clarion"))
TOOLS = {"search_docs", "list_campaigns", "get_campaign", "validate_plan", "check_plan",
         "dry_run", "trigger_campaign", "trigger_status", "message_log",
         "explain_delivery"}  # fmt: skip
PLAN = {
    "campaign_id": "",
    "audience": {"mode": "broadcast"},
    "dynamic_filter_keys": ["store_location"],
    "properties": {
        "store_location": {"type": "string", "required": True},
        "order_id": {"type": "string", "required": True},
        "customer_name": {"type": "string", "required": True, "pii": True},
        "item_count": {"type": "number", "required": True},
        "pickup_time": {"type": "string", "required": True},
    },
}
SF = {**SAMPLE_PROPERTIES}
ALICE, ERIN = {"project_user_id": "staff-sf-alice"}, {"project_user_id": "cust-sf-erin"}


class Session:
    """Calls tools; every answer, failed or not, is kept to check for leaked keys."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[str] = []

    async def call(self, name: str, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(name, arguments)
        text = "".join(getattr(c, "text", "") for c in result.content)
        self.seen.append(text + json.dumps(result.structured_content))
        assert not result.is_error, f"{name}: {text}"
        assert isinstance(result.structured_content, dict)
        return result.structured_content

    async def refused(self, name: str, **arguments: Any) -> str:
        result = await self.client.call_tool(name, arguments)
        text = "".join(getattr(c, "text", "") for c in result.content)
        self.seen.append(text)
        assert result.is_error, f"{name} should have failed: {text}"
        assert "Traceback" not in text
        return text.removeprefix(f"Error executing tool {name}: ")  # the mcp SDK's prefix


def run_mcp(
    server: Server, project_id: str, key: str, work: Callable[[Session], Awaitable[None]],
    *flags: str,
) -> list[str]:  # fmt: skip
    env = {**os.environ, "CLIX_PROJECT_ID": project_id, "CLIX_API_KEY": key,
           "CLIX_BASE_URL": server.url}  # fmt: skip
    params = StdioServerParameters(command=CLARION, args=["mcp", *flags], env=env)

    async def main() -> list[str]:
        async with Client(params, read_timeout_seconds=60) as client:
            session = Session(client)
            await work(session)
            return session.seen

    return asyncio.run(main())


def demo(server: Server, db: Database) -> tuple[str, str, str]:
    info = ensure_demo(create_app(server.settings, start_worker=False), db)
    return info.project_id, info.campaign_id, info.secret_key


async def wait_completed(session: Session, trigger_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        status = await session.call("trigger_status", trigger_id=trigger_id)
        if status["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


def test_an_agent_wires_up_and_debugs_the_store_pickup_campaign(
    server: Server, db: Database
) -> None:
    project_id, campaign_id, key = demo(server, db)
    plan = {**PLAN, "campaign_id": campaign_id}
    found: dict[str, Any] = {}

    async def work(s: Session) -> None:
        tools = {t.name: t for t in (await s.client.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 60, tool.name
            assert tool.input_schema["type"] == "object"

        hits = await s.call(
            "search_docs", query="how do I trigger a campaign with dynamic audience filters"
        )
        top = hits["results"][0]
        assert top["section"] in ("The trigger API",
                                  "POST /api/v1/campaigns/{campaign_id}:trigger"), hits  # fmt: skip
        assert top["citation"] == f"{top['source']} § {top['section']}"
        sources = {r["source"] for r in (await s.call("search_docs", query="trigger",
                                                      limit=20))["results"]}  # fmt: skip
        assert {"README.md", "openapi.json"} <= sources

        listed = (await s.call("list_campaigns"))["campaigns"]
        assert [c["id"] for c in listed] == [campaign_id]
        campaign = await s.call("get_campaign", campaign_id=campaign_id)
        assert campaign["status"] == "active"
        assert campaign["trigger_keys"] == ["store_location"]
        assert {"order_id", "customer_name", "item_count", "pickup_time"} <= set(
            campaign["template_keys"]
        )
        assert campaign["audience_rules"] == (
            "(user_role = 'store_staff' AND store_location = '{{ trigger.store_location }}')"
        )
        assert "{{ trigger.order_id }}" in campaign["templates"]["message"]["body"]

        four = {**plan, "dynamic_filter_keys": ["store_location", "a", "b", "c"]}
        verdict = await s.call("validate_plan", plan_json=four)
        assert verdict["passed"] is False
        assert any("at most 3 entries" in e for e in verdict["errors"]), verdict
        assert (await s.call("validate_plan", plan_json=json.dumps(plan)))["passed"] is True
        broken = await s.call("validate_plan", plan_json="{nope")
        assert broken["passed"] is False and "line 1" in broken["errors"][0]

        assert (await s.call("check_plan", plan_json=plan))["in_sync"] is True
        drifted = {**plan, "dynamic_filter_keys": [], "properties": {
            k: v for k, v in plan["properties"].items() if k != "store_location"}}  # fmt: skip
        findings = (await s.call("check_plan", plan_json=drifted))["findings"]
        assert any("trigger.store_location" in f["problem"] for f in findings), findings

        body = {"audience": {"targets": [ALICE, ERIN]}, "properties": SF}
        dry = await s.call("dry_run", campaign_id=campaign_id, body=body)
        assert dry["reach"]["users"] == 1
        (erin,) = dry["excluded_targets"]
        assert erin["project_user_id"] == "cust-sf-erin"
        assert erin["reason"] == "segment_mismatch"
        assert "user_role" in " ".join(erin["failing_conditions"])
        assert dry["sample"][0]["message"]["body"].startswith("Order #ORD-12345 from Jamie")

        sent = await s.call("trigger_campaign", campaign_id=campaign_id, body=body,
                            idempotency_key="mcp-test-1")  # fmt: skip
        status = await wait_completed(s, sent["trigger_id"])
        assert status["status"] == "completed"
        assert status["counts"]["sent"] == 1
        again = await s.call("trigger_campaign", campaign_id=campaign_id, body=body,
                             idempotency_key="mcp-test-1")  # fmt: skip
        assert again["trigger_id"] == sent["trigger_id"]

        log = await s.call("message_log", trigger_id=sent["trigger_id"], status="sent")
        assert [m["device_id"] for m in log["messages"]] == ["dev-alice-phone"]
        assert log["next_cursor"] is None

        why = await s.call("explain_delivery", trigger_id=sent["trigger_id"],
                           project_user_id="cust-sf-erin")  # fmt: skip
        assert why["reached"] is False
        assert "user_role" in why["first_failure"], why
        assert any(st["ok"] is False and "user_role" in st["title"] for st in why["steps"])
        reached = await s.call("explain_delivery", trigger_id=sent["trigger_id"],
                               device_id="dev-alice-phone")  # fmt: skip
        assert reached["reached"] is True and reached["first_failure"] is None
        found["trigger_id"] = sent["trigger_id"]

    seen = run_mcp(server, project_id, key, work)
    assert found["trigger_id"]
    for text in seen:
        assert key not in text
        assert find_keys(text) == []  # no key of any project, by its checksum


def test_broadcast_needs_the_flag_and_failures_carry_the_servers_code(
    server: Server, db: Database
) -> None:
    project_id, campaign_id, key = demo(server, db)

    def triggers() -> int:
        with db.read() as session:
            return int(session.scalar(select(func.count()).select_from(Trigger)) or 0)

    async def guarded(s: Session) -> None:
        for body in ({"properties": SF}, {"audience": {"broadcast": True}, "properties": SF},
                     {"audience": {"targets": []}, "properties": SF}):  # fmt: skip
            text = await s.refused("trigger_campaign", campaign_id=campaign_id, body=body,
                                   idempotency_key="b-1")  # fmt: skip
            assert text.startswith("broadcast_not_allowed:"), text
            assert "--allow-broadcast" in text
        missing = await s.refused("trigger_campaign", campaign_id=campaign_id,
                                  body={"audience": {"targets": [ALICE]}},
                                  idempotency_key="b-2")  # fmt: skip
        assert missing.startswith("missing_trigger_property (HTTP 400):"), missing
        assert "store_location" in missing
        unknown = await s.refused("get_campaign", campaign_id="no-such-campaign")
        assert unknown.startswith(("campaign_not_found", "not_found")), unknown
        extra = await s.refused("dry_run", campaign_id=campaign_id,
                                body={"properties": SF, "sendAt": "tomorrow"})  # fmt: skip
        assert extra.startswith("invalid_request:") and "sendAt" in extra
        neither = await s.refused("explain_delivery", trigger_id="x")
        assert "exactly one of project_user_id or device_id" in neither
        status = await s.refused(
            "trigger_status", trigger_id="00000000-0000-0000-0000-000000000000"
        )
        assert "(HTTP 404)" in status or "(HTTP 400)" in status, status
        invalid = await s.refused("check_plan", plan_json={"campaign_id": campaign_id})
        assert invalid.startswith("invalid_plan:"), invalid

    seen = run_mcp(server, project_id, key, guarded)
    assert triggers() == 0
    assert all(key not in text for text in seen)

    async def broadcast(s: Session) -> None:
        sent = await s.call("trigger_campaign", campaign_id=campaign_id,
                            body={"properties": SF}, idempotency_key="b-3")  # fmt: skip
        status = await wait_completed(s, sent["trigger_id"])
        assert status["counts"]["sent"] == 2  # the two San Francisco staff phones

    run_mcp(server, project_id, key, broadcast, "--allow-broadcast")
    assert triggers() == 1


def test_passages_follow_headings_outside_code_and_rank_by_bm25() -> None:
    text = "# Doc\nintro\n## Alpha\nfoo bar\n```\n# not a heading\n```\n### Beta\nbaz qux baz\n"
    passages = list(docs.markdown_passages("X.md", text))
    assert [p.section for p in passages] == ["Doc", "Alpha", "Alpha > Beta"]
    assert "# not a heading" in passages[1].text
    index = docs.Index(passages)
    assert [p.section for _, p in index.search("baz")] == ["Alpha > Beta"]
    assert index.search("the and of") == []  # stop words only
    # A long section is searched in windows of whole paragraphs; its best window stands
    # for it, once, and the phrase outranks the words apart.
    long = "# Doc\n## Long\n" + "\n\n".join(f"filler paragraph {i} " * 20 for i in range(20))
    long += "\n\naudience filter here\n## Apart\nthe audience and, far away, a filter\n"
    passages = list(docs.markdown_passages("L.md", long))
    assert len([p for p in passages if p.section == "Long"]) > 5
    assert all(len(p.text) <= docs.WINDOW + 500 for p in passages)
    hits = docs.Index(passages).search("audience filter")
    assert [p.section for _, p in hits] == ["Long", "Apart"]
    assert hits[0][1].text.endswith("audience filter here")
    assert docs.stem("triggers") == docs.stem("triggered") == docs.stem("trigger")
