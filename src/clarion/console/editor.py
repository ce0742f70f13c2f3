"""The campaign editor's form: a flat HTML form <-> a CampaignSpec, and the live preview (the
save-time checks, the message rendered with sample data, the payload's size, and how many
users the audience admits for the sample trigger)."""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from clarion.audience import compiler
from clarion.audience.rules import BUILTINS, MAX_ATTRIBUTES, Audience
from clarion.auth import service as auth
from clarion.campaigns import service as campaigns
from clarion.campaigns.schemas import CampaignOut, CampaignSpec
from clarion.delivery.context import template_context
from clarion.delivery.pipeline import log_fields
from clarion.errors import ClarionError
from clarion.storage.models import User, UserProperty
from clarion.templating.message import PAYLOAD_LIMIT, MessageRejected, payload_size

GROUPS, ROWS = 3, 3  # condition rows the form offers (the audience allows 3 attributes)
FIELDS = ("title", "body", "image_url", "landing_url")
EMAIL_FIELDS = ("to_property", "subject", "text", "html")
NUMBER = re.compile(r"-?\d+(\.\d+)?")
OPERATOR_LABELS = {
    "eq": "equals", "ne": "does not equal", "contains": "contains",
    "not_contains": "does not contain", "starts_with": "starts with", "in": "is in list",
    "not_in": "is not in list", "gt": ">", "gte": "≥", "lt": "<", "lte": "≤",
    "between": "between (a, b)", "is_true": "is true", "is_false": "is false",
    "before": "before", "after": "after", "within_last_days": "within the last N days",
    "more_than_days_ago": "more than N days ago", "exists": "exists",
    "not_exists": "does not exist",
}  # fmt: skip
LIST_OPERATORS = ("in", "not_in", "between")
NO_VALUE = ("exists", "not_exists", "is_true", "is_false")


class FormProblem(ValueError):
    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


def _value(raw: str, operator: str, type_: str) -> Any:
    raw = raw.strip()
    if operator in NO_VALUE:
        return None
    if raw.startswith("{{"):
        return raw  # a trigger property, bound per trigger
    if operator in LIST_OPERATORS:
        items = [item.strip() for item in raw.split(",") if item.strip()]
        return [_scalar(item, type_) for item in items]
    return _scalar(raw, type_)


def _scalar(raw: str, type_: str) -> Any:
    if type_ == "number" and NUMBER.fullmatch(raw):
        return float(raw) if "." in raw else int(raw)
    return raw


def _json_object(text: str, path: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise FormProblem(f"{path}: not valid JSON ({exc})", path) from None
    if not isinstance(value, dict):
        raise FormProblem(f"{path}: give a JSON object {{...}}", path)
    return value


# Set in campaign files or over the API, not in the editor: saving from the editor keeps them.
UNEDITED = ("send_rate", "push", "trigger_schema")


def spec_from_form(form: dict[str, str], current: dict[str, Any] | None = None) -> CampaignSpec:
    """``current``: the definition being edited, whose UNEDITED settings carry over (push
    overrides only while the channel stays push)."""
    """Raises FormProblem with the message to show."""
    groups = []
    for g in range(GROUPS):
        conditions = []
        for r in range(ROWS):
            attribute = form.get(f"c{g}_{r}_attribute", "").strip()
            if not attribute:
                continue
            operator = form.get(f"c{g}_{r}_operator", "eq")
            type_ = form.get(f"c{g}_{r}_type", "") or None
            condition: dict[str, Any] = {"attribute": attribute, "operator": operator}
            if type_ and attribute not in BUILTINS:
                condition["type"] = type_
            value = _value(form.get(f"c{g}_{r}_value", ""), operator, type_ or "")
            if value is not None:
                condition["value"] = value
            conditions.append(condition)
        if conditions:
            groups.append({"match": form.get(f"g{g}_match", "all"), "conditions": conditions})
    channel = form.get("channel", "push")
    data: dict[str, Any] = {
        "name": form.get("name", "").strip(),
        "channel": channel,
        "audience": {"match": form.get("match", "all"), "groups": groups},
    }
    if channel == "email":
        data["email"] = {f: form.get(f"email_{f}", "") for f in EMAIL_FIELDS}
    elif channel == "webhook":
        data["webhook"] = {
            "url": form.get("webhook_url", "").strip(),
            "headers": _json_object(form.get("webhook_headers", ""), "webhook.headers"),
            "body": _json_object(form.get("webhook_body", ""), "webhook.body"),
        }
    else:
        data["message"] = {f: form.get(f, "") for f in FIELDS}
    if form.get("status"):
        data["status"] = form["status"]
    for key in UNEDITED:
        if current and current.get(key) is not None and (key != "push" or channel == "push"):
            data[key] = current[key]
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first.get("msg", "")).removeprefix("Value error, ")
        if "distinct attributes" in message:
            message += (
                f" (the console offers rows for more, but at most {MAX_ATTRIBUTES} "
                "different attributes may be used)"
            )
        raise FormProblem(f"{path}: {message}" if path else message, path) from None


def form_from_campaign(campaign: CampaignOut) -> dict[str, str]:
    form: dict[str, str] = {"name": campaign.name, "channel": campaign.channel,
                            "match": campaign.audience.match}  # fmt: skip
    if campaign.message is not None:
        form.update({f: getattr(campaign.message, f) for f in FIELDS})
    if campaign.email is not None:
        form.update({f"email_{f}": getattr(campaign.email, f) for f in EMAIL_FIELDS})
    if campaign.webhook is not None:
        form["webhook_url"] = campaign.webhook.url
        form["webhook_headers"] = orjson.dumps(campaign.webhook.headers).decode()
        form["webhook_body"] = orjson.dumps(
            campaign.webhook.body, option=orjson.OPT_INDENT_2
        ).decode()
    for g, group in enumerate(campaign.audience.groups[:GROUPS]):
        form[f"g{g}_match"] = group.match
        for r, condition in enumerate(group.conditions[:ROWS]):
            value = condition.value
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            custom = condition.attribute not in BUILTINS
            form[f"c{g}_{r}_attribute"] = condition.attribute
            form[f"c{g}_{r}_operator"] = condition.operator
            form[f"c{g}_{r}_value"] = "" if shown is None else str(shown)
            form[f"c{g}_{r}_type"] = (condition.type or "") if custom else ""
    return form


def property_names(session: Session, project_id: str) -> list[tuple[str, str]]:
    """The project's custom property names (and whether they hold numbers), for the picker."""
    rows = session.execute(
        select(UserProperty.key, UserProperty.value_num.is_not(None))
        .where(UserProperty.project_id == project_id)
        .distinct()
        .limit(500)
    ).all()
    found: dict[str, str] = {}
    for key, numeric in rows:
        found[key] = "number" if numeric and found.get(key, "number") == "number" else "string"
    return sorted(found.items())


def preview(
    session: Session, project_id: str, form: dict[str, str], sample: str, sample_user: str
) -> dict[str, Any]:
    """What the editor shows as you type: errors (with line and column), the rendered
    message and its size, and the audience's count for the sample trigger."""
    out: dict[str, Any] = dict.fromkeys(
        ("error", "fields", "payload_bytes", "count", "count_error")
    )
    out["payload_limit"] = PAYLOAD_LIMIT
    try:
        properties = orjson.loads(sample or "{}")
        if not isinstance(properties, dict):
            raise ValueError("the sample trigger must be a JSON object")
    except (orjson.JSONDecodeError, ValueError) as exc:
        out["error"] = {"message": f"sample trigger JSON: {exc}", "path": "sample"}
        return out
    try:
        spec = spec_from_form({**form, "name": form.get("name") or "preview"})
        plan = campaigns.check_spec(session, project_id, spec)
    except FormProblem as exc:
        out["error"] = {"message": str(exc), "path": exc.path}
        return out
    except ClarionError as exc:
        out["error"] = {"message": exc.message, **exc.details}
        return out
    user_props: dict[str, Any] = {}
    if sample_user:
        query = select(User).where(
            User.project_id == project_id, User.project_user_id == sample_user
        )
        user = session.scalars(query).first()
        if user is None:
            out["error"] = {"message": f"No user {sample_user!r} to preview with.",
                            "path": "sample_user"}  # fmt: skip
            return out
        user_props = user.properties or {}
    renderer = plan.for_trigger(properties, auth.url_schemes(session, project_id))
    context = template_context(properties, sample_user or "sample-user", user_props, None)
    try:
        fields = renderer.render_fields(context)
        out["fields"] = log_fields(spec, fields)
        if plan.push:
            out["payload_bytes"] = payload_size(fields)
        renderer.check(fields)
    except MessageRejected as exc:
        out["error"] = {"message": exc.reason, "path": "message"}
    out["count"], out["count_error"] = _count(session, project_id, spec.audience, properties)
    return out


def _count(
    session: Session, project_id: str, audience: Audience, properties: dict[str, Any]
) -> tuple[int | None, str | None]:
    try:
        bound = audience.bind(properties)
    except ClarionError as exc:
        return None, exc.message
    except ValueError as exc:
        return None, str(exc)
    params = compiler.params(project_id, audience, bound, time.time(), None)
    return int(session.execute(compiler.count(audience, False), params).scalar() or 0), None
