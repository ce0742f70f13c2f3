"""Campaigns as code: read a YAML or JSON campaign file into a CampaignSpec."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from clarion.campaigns.schemas import CampaignSpec
from clarion.errors import InvalidRequest


def load_spec(path: Path) -> CampaignSpec:
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise InvalidRequest(
            f"{path}: not valid {path.suffix[1:].upper() or 'YAML'}: {exc}"
        ) from None
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise InvalidRequest(f"{path}: {problems}") from None
