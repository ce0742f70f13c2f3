"""A campaign's trigger plan (the seed's ``.clix/api-trigger-plan.json``), ready for
``clarion plan validate``: every ``trigger.*`` key its rules and templates use, typed as its
rules compare it, and everything its ``trigger_schema`` declares, as declared. Served by
``GET /api/v1/campaigns/{id}/plan`` (``clarion plan init --from-campaign``) and the
console's download; the console's trigger snippets use its examples."""

from __future__ import annotations

from typing import Any

from clarion.audience.rules import trigger_key
from clarion.campaigns.schemas import CampaignOut

EXAMPLES = {"string": "example", "number": 1, "boolean": True,
            "datetime": "2026-05-01T14:30:00Z"}  # fmt: skip
PLAN_TYPES = {"string": "string", "number": "number", "boolean": "boolean",
              "datetime": "datetime", "version": "string"}  # fmt: skip


def key_types(campaign: CampaignOut) -> dict[str, str]:
    """Each ``trigger.*`` key the campaign uses or declares, with its type: the schema's,
    else the type its rules compare it as (template-only keys are strings)."""
    types: dict[str, str] = {k: spec.type for k, spec in (campaign.trigger_schema or {}).items()}
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
    schema = campaign.trigger_schema or {}
    out = {}
    for key, kind in key_types(campaign).items():
        declared = schema.get(key)
        given = declared.example if declared is not None else None
        out[key] = EXAMPLES[kind] if given is None else given
    return out


def plan(campaign: CampaignOut) -> dict[str, Any]:
    """Without a schema every key is required (the trigger renders them all); with one, a key
    it declares is as required as it says (rule keys always are)."""
    schema = campaign.trigger_schema or {}
    examples = example_properties(campaign)
    properties: dict[str, dict[str, Any]] = {}
    for key, kind in key_types(campaign).items():
        declared = schema.get(key)
        entry: dict[str, Any] = {"type": kind,
                                 "required": declared is None or declared.required}  # fmt: skip
        if declared is not None and declared.pii:
            entry["pii"] = True
        entry["example"] = examples[key]
        properties[key] = entry
    return {
        "campaign_id": campaign.id,
        "audience": {"mode": "default"},
        "dynamic_filter_keys": list(campaign.trigger_keys),
        "properties": properties,
    }
