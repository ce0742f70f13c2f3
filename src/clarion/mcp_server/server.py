"""``clarion mcp``: a Model Context Protocol server over stdio, so that a coding agent can
do the seed's whole workflow against a live Clarion: read the docs, inspect a campaign,
validate and drift-check a trigger plan, dry-run a payload, trigger a test send, follow it
and ask why a user was not reached.

It is a client of the HTTP API like any backend: it calls through ``clarion_client`` with
the SDK's environment (CLIX_PROJECT_ID, CLIX_API_KEY, CLIX_BASE_URL). A failed call comes
back as a tool error carrying the server's error code and message; nothing it returns or
logs carries a key."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from clarion_client import Client, errors, plan
from clarion_client.cli import drift
from clarion_client.config import redact
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field, ValidationError

from clarion import __version__
from clarion.audience.rules import Audience
from clarion.mcp_server import docs

log = logging.getLogger("clarion.mcp")
F = TypeVar("F", bound=Callable[..., Any])
KEY = re.compile(r"clx_(?:sk|pk)_[A-Za-z0-9]+")
BODY_KEYS = frozenset({"audience", "properties", "send_at", "in_local_time"})
INSTRUCTIONS = """Clarion runs API-triggered campaigns: a campaign is configured once (channel,
templates, audience rules) and a backend fires it with POST
/api/v1/campaigns/{id}:trigger carrying `properties` (trigger.* in rules and templates).
Wire up a trigger in this order: search_docs for the contract; get_campaign for the
trigger.* keys its rules and templates need; write a trigger plan and validate_plan /
check_plan it; dry_run the payload your backend will send; trigger_campaign a test send to
explicit targets; trigger_status and message_log to follow it; explain_delivery when a user
was not reached."""

Body = Annotated[
    dict[str, Any],
    Field(description='The :trigger body: {"audience": {"broadcast": true} or {"targets": '
                      '[{"project_user_id": "u-1"}, {"device_id": "d-9"}]}, "properties": '
                      '{"key": "value"}}. Each property is trigger.<key> in the rules and '
                      "templates; dynamic audience filters use these top-level values. A "
                      "target may carry its own properties; send_at (ISO-8601) and "
                      "in_local_time schedule a trigger (a dry run ignores them)."),
]  # fmt: skip
IdempotencyKey = Annotated[
    str,
    Field(min_length=1, max_length=200,
          description="One per intended send; repeat it when retrying, and the first "
                      "trigger's id comes back instead of a second send."),
]  # fmt: skip
PlanJson = Annotated[
    dict[str, Any] | str,
    Field(description="The trigger plan (.clix/api-trigger-plan.json), as an object or as "
                      "its JSON text."),
]  # fmt: skip


def scrub(value: Any, secret: str) -> Any:
    """Every key-shaped string (and the configured key itself) replaced by its redaction."""
    if isinstance(value, str):
        if secret and secret in value:
            value = value.replace(secret, redact(secret))
        return KEY.sub(lambda m: redact(m.group(0)), value)
    if isinstance(value, Mapping):
        return {k: scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secret) for v in value]
    return value


def failure(exc: errors.ClixError) -> ToolError:
    """The server's error code and message (and the HTTP status), never a traceback."""
    where = f" (HTTP {exc.status})" if exc.status is not None else ""
    found = exc.body.get("error") if isinstance(exc.body, dict) else None
    path = f" at {found['path']}" if isinstance(found, dict) and found.get("path") else ""
    return ToolError(f"{exc.code or 'error'}{where}: {exc.message}{path}")


def readable_rules(audience: Any) -> str:
    try:
        return Audience.model_validate(audience).describe()
    except ValidationError:
        return json.dumps(audience)


def audience_args(body: Mapping[str, Any]) -> dict[str, Any]:
    """The :trigger body as the client SDK's arguments (broadcast, targets, properties)."""
    if not isinstance(body, Mapping):
        raise ToolError("invalid_request: body must be an object")
    unknown = sorted(set(body) - BODY_KEYS)
    if unknown:
        raise ToolError(f"invalid_request: body has unknown key(s) {', '.join(unknown)}; "
                        f"it takes {', '.join(sorted(BODY_KEYS))}")  # fmt: skip
    audience = body.get("audience") or {}
    properties = body.get("properties") or {}
    if not isinstance(audience, Mapping) or not isinstance(properties, Mapping):
        raise ToolError("invalid_request: audience and properties must be objects")
    targets = audience.get("targets")
    if targets is not None and not isinstance(targets, list):
        raise ToolError("invalid_request: audience.targets must be a list")
    return {"broadcast": audience.get("broadcast"), "targets": targets,
            "properties": properties}  # fmt: skip


def plan_data(plan_json: dict[str, Any] | str) -> Any:
    if isinstance(plan_json, str):
        return plan.parse(plan_json)  # PlanFileError names the line and column
    return plan_json


def build(client: Client, *, allow_broadcast: bool = False) -> MCPServer:
    """The server and its ten tools, calling through ``client``."""
    server: MCPServer = MCPServer("clarion", instructions=INSTRUCTIONS, version=__version__)
    secret = client.credentials.api_key
    index: list[docs.Index] = []  # built at the first search (the OpenAPI document is fetched)
    notes: list[str] = []

    def tool(fn: F) -> F:
        @functools.wraps(fn)
        def answered(*args: Any, **kwargs: Any) -> Any:
            try:
                return scrub(fn(*args, **kwargs), secret)
            except errors.ClixError as exc:
                raise failure(exc) from None
            except plan.PlanFileError as exc:
                raise ToolError(f"invalid_plan: {exc}") from None

        server.add_tool(answered)
        return fn

    def docs_index() -> docs.Index:
        if not index:
            try:
                document = client.openapi()
            except errors.ClixError as exc:
                document = None
                notes.append(f"The API reference is missing: the server's OpenAPI document "
                             f"could not be read ({exc.code or exc.message}).")  # fmt: skip
            index.append(docs.build(document))
        return index[0]

    @tool
    def search_docs(
        query: Annotated[str, Field(min_length=1, max_length=500)],
        limit: Annotated[int, Field(ge=1, le=20)] = 5,
    ) -> dict[str, Any]:
        """Search Clarion's own docs (README: the trigger API, campaign file format, audience
        rules, templates, configuration; the client SDK and trigger-plan format; the API
        reference from the live server's OpenAPI document). Returns ranked passages (BM25),
        each with a citation "file § section"."""
        found = docs_index().search(query, limit)
        out: dict[str, Any] = {"query": query, "results": [docs.result(s, p) for s, p in found]}
        if notes:
            out["note"] = notes[0]
        return out

    @tool
    def list_campaigns() -> dict[str, Any]:
        """The project's campaigns: id, name, channel, type, status, version, the audience
        rules in readable form and the trigger.* keys the rules need."""
        return {"campaigns": [
            {"id": c["id"], "name": c["name"], "channel": c["channel"], "type": c["type"],
             "status": c["status"], "version": c["version"],
             "audience_rules": readable_rules(c.get("audience")),
             "trigger_keys": c.get("trigger_keys", [])}
            for c in client.list_campaigns()
        ]}  # fmt: skip

    @tool
    def get_campaign(campaign_id: str) -> dict[str, Any]:
        """One campaign: status, channel, the audience rules (readable and as stored), the
        trigger.* keys the rules need (send them, or the trigger is refused) and those the
        templates use (absent ones render empty), the templates, and warnings."""
        c = client.get_campaign(campaign_id)
        templates = {k: c[k] for k in ("message", "email", "webhook", "push") if c.get(k)}
        return {"id": c["id"], "name": c["name"], "status": c["status"],
                "channel": c["channel"], "type": c["type"], "version": c["version"],
                "audience_rules": readable_rules(c.get("audience")),
                "audience": c.get("audience"), "trigger_keys": c.get("trigger_keys", []),
                "template_keys": c.get("template_keys", []), "templates": templates,
                "warnings": c.get("warnings", [])}  # fmt: skip

    @tool
    def validate_plan(
        plan_json: PlanJson,
        strict: Annotated[bool, Field(description="Warnings fail too (--strict).")] = True,
    ) -> dict[str, Any]:
        """Validate a trigger plan offline: the same verdicts and messages as
        `clarion plan validate --strict` (errors, and warnings that fail under strict)."""
        try:
            verdict = plan.validate(plan_data(plan_json))
        except plan.PlanFileError as exc:
            verdict = plan.Verdict(errors=[str(exc)])
        return verdict.to_json(strict)

    @tool
    def check_plan(plan_json: PlanJson) -> dict[str, Any]:
        """Drift check: where the plan and the live campaign disagree (type, status, the
        trigger.* keys the rules and templates use), each finding with its fix."""
        checked = plan.Plan.from_data(plan_data(plan_json), source="plan")
        findings = drift(client, checked)
        return {"campaign_id": checked.campaign_id, "in_sync": not findings,
                "findings": findings}  # fmt: skip

    @tool
    def dry_run(
        campaign_id: str, body: Body, sample: Annotated[int, Field(ge=0, le=50)] = 5
    ) -> dict[str, Any]:
        """Resolve a :trigger body without sending or writing anything: users and devices
        that would receive it, how many each condition admits, sample rendered messages,
        and why each excluded target is excluded."""
        return client.dry_run(campaign_id, sample=sample, **audience_args(body))

    @tool
    def trigger_campaign(
        campaign_id: str,
        body: Body,
        idempotency_key: IdempotencyKey,
    ) -> dict[str, Any]:
        """Trigger a test send: a real trigger, so only to explicit audience.targets unless
        this server was started with --allow-broadcast. Returns the trigger_id; follow it
        with trigger_status and message_log."""
        args = audience_args(body)
        if not allow_broadcast and (args["broadcast"] or not args["targets"]):
            raise ToolError("broadcast_not_allowed: this MCP server triggers explicit "
                            "audience.targets only (a body without targets reaches the whole "
                            "audience); restart it with `clarion mcp --allow-broadcast` to "
                            "allow broadcasts")  # fmt: skip
        result = client.trigger_campaign(campaign_id, dedupe_key=idempotency_key, **args,
                                         send_at=body.get("send_at"),
                                         in_local_time=bool(body.get("in_local_time")))  # fmt: skip
        return {"trigger_id": result.trigger_id, "campaign_id": result.campaign_id,
                "duplicate": result.duplicate}  # fmt: skip

    @tool
    def trigger_status(trigger_id: str) -> dict[str, Any]:
        """A trigger's status (accepted, resolving, sending, completed, failed), its counts
        (matched, sent, failed, skipped, pending) and its excluded targets with reasons."""
        return client.get_trigger(trigger_id).raw

    @tool
    def message_log(
        trigger_id: str,
        status: Annotated[
            str | None, Field(description="queued, sending, sent, failed or skipped")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Field(description="next_cursor of the last page")] = None,
    ) -> dict[str, Any]:
        """One page of a trigger's message log: each message's user, device, channel,
        status, provider and reason (why it was skipped or failed); next_cursor pages on."""
        return client.message_page(trigger_id, status=status, limit=limit, cursor=cursor)

    @tool
    def explain_delivery(
        trigger_id: str, project_user_id: str | None = None, device_id: str | None = None
    ) -> dict[str, Any]:
        """Why one user (project_user_id) or device (device_id) was or was not reached by a
        trigger, step by step: the target, each audience condition with the values compared,
        devices and tokens, rendering, and the message log. first_failure says where to
        look first."""
        return client.explain_delivery(trigger_id, project_user_id=project_user_id,
                                       device_id=device_id)  # fmt: skip

    return server
