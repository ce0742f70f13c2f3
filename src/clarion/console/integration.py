"""The campaign page's integration panel: the trigger call ready to paste (curl, Python
``clarion-client``, Node ``fetch``) with the campaign's ``trigger.*`` keys filled in (the
plan download is campaigns.trigger_plan's)."""

from __future__ import annotations

import json

from clarion.campaigns.schemas import CampaignOut
from clarion.campaigns.trigger_plan import example_properties


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
