"""The campaign page's integration panel: the trigger call ready to paste (curl, Python
``clarion-client``, Node ``fetch``) with the campaign's ``trigger.*`` keys filled in, and the
seed's ``.clix/api-trigger-plan.json`` for it (``clarion plan validate`` accepts it as is)."""

from __future__ import annotations

import json
from typing import Any

from clarion.audience.rules import trigger_key
from clarion.campaigns.schemas import CampaignOut

EXAMPLES = {"string": "example", "number": 1, "boolean": True,
            "datetime": "2026-05-01T14:30:00Z"}  # fmt: skip
PLAN_TYPES = {"string": "string", "number": "number", "boolean": "boolean",
              "datetime": "datetime", "version": "string"}  # fmt: skip


def key_types(campaign: CampaignOut) -> dict[str, str]:
    """Each ``trigger.*`` key the campaign uses, with the type its rules compare it as
    (template-only keys are strings)."""
    types: dict[str, str] = {}
    for located in campaign.audience.located():
        condition = located.condition
        for item in condition.operands:
            key = trigger_key(item)
            if key is not None:
                types.setdefault(key, PLAN_TYPES.get(condition.type or "string", "string"))
    for key in campaign.template_keys:
        types.setdefault(key, "string")
    return types


def example_properties(campaign: CampaignOut) -> dict[str, Any]:
    return {key: EXAMPLES[kind] for key, kind in key_types(campaign).items()}


def plan(campaign: CampaignOut) -> dict[str, Any]:
    types = key_types(campaign)
    return {
        "campaign_id": campaign.id,
        "audience": {"mode": "default"},
        "dynamic_filter_keys": list(campaign.trigger_keys),
        "properties": {
            key: {"type": kind, "required": True, "example": EXAMPLES[kind]}
            for key, kind in types.items()
        },
    }


def snippets(campaign: CampaignOut, base_url: str, project_id: str) -> dict[str, str]:
    properties = example_properties(campaign)
    body = json.dumps({"properties": properties}, indent=2)
    url = f"{base_url.rstrip('/')}/api/v1/campaigns/{campaign.id}:trigger"
    curl = (
        f"curl -X POST '{url}' \\\n"
        f"  -H 'X-Clix-Project-ID: {project_id}' \\\n"
        '  -H "X-Clix-API-Key: $CLIX_API_KEY" \\\n'
        "  -H 'Content-Type: application/json' \\\n"
        f"  -d '{json.dumps({'properties': properties})}'"
    )
    python = (
        "# pip install clarion-client; CLIX_PROJECT_ID, CLIX_API_KEY and CLIX_BASE_URL in the\n"
        "# environment (CLIX_BASE_URL=" + base_url.rstrip("/") + ")\n"
        "from clarion_client import Client\n\n"
        "with Client() as clix:\n"
        "    trigger_id = clix.trigger_campaign(\n"
        f"        {campaign.id!r},\n"
        f"        properties={properties!r},\n"
        '        dedupe_key="order-123:pickup",  # a replayed job then sends nothing twice\n'
        "    )\n"
    )
    node = (
        f"const response = await fetch('{url}', {{\n"
        "  method: 'POST',\n"
        "  headers: {\n"
        f"    'X-Clix-Project-ID': '{project_id}',\n"
        "    'X-Clix-API-Key': process.env.CLIX_API_KEY,\n"
        "    'Content-Type': 'application/json',\n"
        "  },\n"
        f"  body: JSON.stringify({body.replace(chr(10), chr(10) + '  ')}),\n"
        "  signal: AbortSignal.timeout(10_000),\n"
        "});\n"
        "if (!response.ok) throw new Error(`trigger failed: ${response.status}`);\n"
        "const { trigger_id } = await response.json();\n"
    )
    return {"curl": curl, "python": python, "node": node}
