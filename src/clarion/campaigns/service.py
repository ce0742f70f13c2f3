"""Campaign decisions: create, update (new version), apply by name, lifecycle changes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from clarion import cache
from clarion.audience.rules import Audience
from clarion.audit import service as audit
from clarion.auth import service as auth
from clarion.campaigns import repository
from clarion.campaigns.payload import TriggerProperty
from clarion.campaigns.schemas import (
    CampaignOut,
    CampaignSpec,
    EmailTemplate,
    MessageTemplate,
    PushOverrides,
    Status,
    WebhookTemplate,
)
from clarion.delivery import controls
from clarion.delivery.controls import CampaignDelivery
from clarion.errors import ClarionError, InvalidRequest
from clarion.ids import uuid7
from clarion.storage.models import Campaign, CampaignVersion, utcnow
from clarion.templating import jsonbody, urls
from clarion.templating import message as message_plan
from clarion.templating.analysis import TemplateProblem
from clarion.templating.message import Field, MessagePlan
from clarion.webhooks import netguard

NOT_FOUND = (
    "No campaign {id!r} in this project. Check the campaign id in the console or with "
    "`clarion campaigns list`."
)


class CampaignNotFound(ClarionError):
    status_code = 400  # the Clix status for an unknown campaign id
    code = "campaign_not_found"


def get(session: Session, project_id: str, campaign_id: str) -> Campaign:
    campaign = repository.get(session, project_id, campaign_id)
    if campaign is None:
        raise CampaignNotFound(NOT_FOUND.format(id=campaign_id))
    return campaign


@dataclass(frozen=True, slots=True)
class Version:
    """One parsed campaign version. Versions never change, so parsing is cached."""

    campaign_id: str
    number: int
    channel: str
    message: MessageTemplate | None
    audience: Audience
    send_rate: float | None = None  # messages per second
    email: EmailTemplate | None = None
    webhook: WebhookTemplate | None = None
    push: PushOverrides | None = None
    trigger_schema: dict[str, TriggerProperty] | None = None
    delivery: CampaignDelivery = controls.NO_CONTROLS  # the same object when none is set

    @property
    def rate(self) -> float | None:
        """Messages per second this campaign may go at: send_rate, or the throttle."""
        if self.send_rate:
            return self.send_rate
        per_minute = self.delivery.throttle_per_minute
        return per_minute / 60 if per_minute else None

    @property
    def plan(self) -> MessagePlan:
        """The message's templates, parsed once (a stored version that no longer passes
        today's checks fails its messages with the reason rather than failing to load)."""
        return plan_for(self, strict=False)

    @property
    def per_user(self) -> bool:
        """One message per user (in-app, e-mail, webhook), not one per device (push)."""
        return self.channel != "push"


def plan_for(spec: Version | CampaignSpec, *, strict: bool = True) -> MessagePlan:
    """The template fields of a campaign's channel."""
    if spec.channel == "email":
        assert spec.email is not None
        e = spec.email
        return message_plan.plan_fields((
            Field("subject", e.subject, "email.subject", required=True),
            Field("text", e.text, "email.text"),
            Field("html", e.html, "email.html", html=True),
        ), strict=strict, push=False)  # fmt: skip
    if spec.channel == "webhook":
        assert spec.webhook is not None
        fields = tuple(
            Field(pointer, source, f"webhook.body{pointer}")
            for pointer, source in jsonbody.leaves(spec.webhook.body)
        )
        return message_plan.plan_fields(fields, strict=strict, push=False)
    assert spec.message is not None
    return message_plan.plan_fields(message_plan.push_fields(spec.message), strict=strict,
                                    push=spec.channel == "push")  # fmt: skip


_versions: cache.TTLCache[tuple[str, int], Version] = cache.TTLCache(ttl=float("inf"))


def load_version(session: Session, campaign_id: str, number: int) -> Version:
    cached = _versions.get((campaign_id, number))
    if cached is not None:
        return cached
    row = repository.version(session, campaign_id, number)
    assert row is not None, "a trigger or campaign only points at versions that exist"
    definition = row.definition
    parsed = Version(
        campaign_id=campaign_id,
        number=number,
        channel=str(definition.get("channel", "push")),
        message=_optional(MessageTemplate, definition.get("message")),
        audience=Audience.model_validate(definition["audience"]),
        send_rate=definition.get("send_rate"),
        email=_optional(EmailTemplate, definition.get("email")),
        webhook=_optional(WebhookTemplate, definition.get("webhook")),
        push=_optional(PushOverrides, definition.get("push")),
        trigger_schema=_schema(definition.get("trigger_schema")),
        delivery=controls.mapping(definition.get("delivery")),
    )
    _versions.put((campaign_id, number), parsed)  # never stale: a version never changes
    return parsed


def definition(session: Session, campaign: Campaign) -> dict[str, Any]:
    """The current version's definition, as saved."""
    row = repository.version(session, campaign.id, campaign.version)
    assert row is not None, "a campaign always has its current version"
    return dict(row.definition)


def _optional(model: Any, value: Any) -> Any:
    return None if value is None else model.model_validate(value)


def _schema(value: Any) -> dict[str, TriggerProperty] | None:
    if value is None:
        return None
    return {k: TriggerProperty.model_validate(v) for k, v in value.items()}


def to_out(session: Session, campaign: Campaign) -> CampaignOut:
    loaded = load_version(session, campaign.id, campaign.version)
    return CampaignOut(
        id=campaign.id,
        name=campaign.name,
        channel=campaign.channel,
        type=campaign.type,
        status=campaign.status,
        version=campaign.version,
        message=loaded.message,
        email=loaded.email,
        webhook=loaded.webhook,
        push=loaded.push,
        audience=loaded.audience,
        trigger_schema=loaded.trigger_schema,
        delivery=None if loaded.delivery is controls.NO_CONTROLS else loaded.delivery,
        trigger_keys=loaded.audience.trigger_keys(),
        template_keys=loaded.plan.trigger_keys,
        warnings=loaded.plan.warnings,
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
    )


def list_campaigns(session: Session, project_id: str) -> Sequence[Campaign]:
    return repository.list_for_project(session, project_id)


def check_spec(session: Session, project_id: str, spec: CampaignSpec) -> MessagePlan:
    """Save-time checks of a campaign's channel section; raises InvalidRequest."""
    if spec.message is not None:
        return check_message(session, project_id, spec.message)
    if spec.webhook is not None:
        try:
            netguard.check_url(spec.webhook.url)
        except netguard.UnsafeDestination as exc:
            raise InvalidRequest(f"webhook.url: {exc}", code="invalid_url",
                                 path="webhook.url") from None  # fmt: skip
    return _checked(lambda: plan_for(spec))


def _checked(make: Callable[[], MessagePlan]) -> MessagePlan:
    try:
        return make()
    except TemplateProblem as exc:
        raise InvalidRequest(
            f"{exc}",
            code="invalid_template",
            path=exc.field,
            line=exc.line,
            column=exc.column,
        ) from None


def check_message(session: Session, project_id: str, message: MessageTemplate) -> MessagePlan:
    """Save-time checks of the templates: syntax, filters, namespaces, and a URL field whose
    scheme is fixed in the template must be allowed for the project. Raises InvalidRequest
    naming the field, line and column."""
    checked = _checked(lambda: message_plan.plan(message))
    schemes = auth.url_schemes(session, project_id)
    for name in message_plan.URL_FIELDS:
        problem = urls.static_problem(getattr(message, name), schemes)
        if problem is not None:
            raise InvalidRequest(
                f"message.{name}: {problem}{_SCHEME_HINT}",
                code="invalid_url",
                path=f"message.{name}",
            )
    return checked


_SCHEME_HINT = " (the app's own deep-link schemes are set with `clarion projects set-url-schemes`)"


def create(
    session: Session, project_id: str, spec: CampaignSpec, actor: str = audit.CLI
) -> Campaign:
    check_spec(session, project_id, spec)
    if repository.by_name(session, project_id, spec.name) is not None:
        raise InvalidRequest(
            f"A campaign named {spec.name!r} already exists; update it, or apply the file to "
            "create-or-update by name.",
            code="campaign_name_taken",
        )
    campaign = Campaign(
        id=uuid7(),
        project_id=project_id,
        name=spec.name,
        channel=spec.channel,
        type=spec.type,
        status=spec.status or "draft",
        version=1,
    )
    session.add(campaign)
    session.flush()
    session.add(CampaignVersion(campaign_id=campaign.id, version=1, definition=spec.definition()))
    session.flush()
    audit.record(session, project_id, actor, "campaign.created", "campaign", campaign.id,
                 name=campaign.name, version=1, status=campaign.status)  # fmt: skip
    return campaign


def update(
    session: Session, campaign: Campaign, spec: CampaignSpec, actor: str = audit.CLI
) -> Campaign:
    """Record a new version when the definition changed; triggers keep the one they used."""
    check_spec(session, campaign.project_id, spec)
    if spec.name != campaign.name:
        other = repository.by_name(session, campaign.project_id, spec.name)
        if other is not None and other.id != campaign.id:
            raise InvalidRequest(
                f"Another campaign is already named {spec.name!r}.", code="campaign_name_taken"
            )
    current = repository.version(session, campaign.id, campaign.version)
    definition = spec.definition()
    before = {"name": campaign.name, "version": campaign.version, "status": campaign.status}
    if current is None or current.definition != definition:
        campaign.version += 1
        session.add(
            CampaignVersion(
                campaign_id=campaign.id, version=campaign.version, definition=definition
            )
        )
    campaign.name = spec.name
    campaign.channel = spec.channel
    campaign.type = spec.type
    if spec.status is not None:
        campaign.status = spec.status
    campaign.updated_at = utcnow()
    session.flush()
    after = {"name": campaign.name, "version": campaign.version, "status": campaign.status}
    if after != before:
        audit.record(session, campaign.project_id, actor, "campaign.updated", "campaign",
                     campaign.id, before=before, after=after)  # fmt: skip
    cache.campaigns.clear()
    return campaign


def apply(
    session: Session, project_id: str, spec: CampaignSpec, actor: str = audit.CLI
) -> tuple[Campaign, bool]:
    """Create or update by name. Returns the campaign and whether it was created."""
    existing = repository.by_name(session, project_id, spec.name)
    if existing is None:
        return create(session, project_id, spec, actor), True
    return update(session, existing, spec, actor), False


def set_status(
    session: Session, campaign: Campaign, status: Status, actor: str = audit.CLI
) -> Campaign:
    if campaign.status == "archived" and status != "archived":
        raise InvalidRequest(
            "This campaign is archived; archived campaigns cannot be reactivated. Create a new "
            "campaign from its file instead.",
            code="campaign_archived",
        )
    if campaign.status != status:
        audit.record(session, campaign.project_id, actor, "campaign.status_changed", "campaign",
                     campaign.id, before=campaign.status, after=status)  # fmt: skip
    campaign.status = status
    campaign.updated_at = utcnow()
    session.flush()
    cache.campaigns.clear()
    return campaign
