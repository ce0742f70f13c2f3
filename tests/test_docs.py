"""The README stays true: every setting is documented, and it opens with the two commands."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import yaml

from clarion.audience.rules import Audience
from clarion.campaigns.schemas import CampaignSpec, EmailTemplate, WebhookTemplate
from clarion.config import Settings
from clarion.delivery.controls import CampaignDelivery

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [n for n in Settings.model_fields if f"`CLARION_{n.upper()}`" not in README]
    assert missing == [], f"document these settings in the README: {missing}"


def test_readme_opens_with_the_two_commands() -> None:
    head = README[:1500]
    assert "make run" in head and "make test" in head


def test_the_api_document_describes_every_route(server: Any) -> None:
    document = server.client.get("/openapi.json").json()
    trigger = document["paths"]["/api/v1/campaigns/{campaign_id}:trigger"]["post"]
    schema = trigger["requestBody"]["content"]["application/json"]["schema"]
    assert {"audience", "properties"} <= set(schema["properties"])
    for path in ("/api/v1/triggers/{trigger_id}", "/api/v1/triggers/{trigger_id}/messages",
                 "/api/v1/users", "/api/v1/devices", "/api/v1/campaigns:apply"):  # fmt: skip
        assert path in document["paths"]
    assert server.client.get("/docs").status_code == 200


def test_every_yaml_example_in_the_readme_is_a_valid_campaign_or_audience() -> None:
    """The campaign file, channel section and audience rules examples load as documented."""
    blocks = re.findall(r"```yaml\n(.*?)```", README, re.S)
    assert len(blocks) >= 4
    for block in blocks:
        data = yaml.safe_load(textwrap.dedent(block))
        if "name" in data:
            CampaignSpec.model_validate(data)
        elif "email" in data:
            EmailTemplate.model_validate(data["email"])
        elif "webhook" in data:
            WebhookTemplate.model_validate(data["webhook"])
        elif "delivery" in data:
            CampaignDelivery.model_validate(data["delivery"])
        else:
            Audience.model_validate(data["audience"])
