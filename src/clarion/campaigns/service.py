"""Campaign decisions: create, update (new version), apply by name, lifecycle changes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from clarion import cache
from clarion.audience.rules import Audience
from clarion.auth import service as auth
from clarion.campaigns import repository
from clarion.campaigns.schemas import CampaignOut, CampaignSpec, MessageTemplate, Status
from clarion.errors import ClarionError, InvalidRequest
from clarion.ids import uuid7
from clarion.storage.models import Campaign, CampaignVersion, utcnow
from clarion.templating import message as message_plan
from clarion.templating import urls
from clarion.templating.analysis import TemplateProblem
from clarion.templating.message import MessagePlan

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
    message: MessageTemplate
    audience: Audience
    send_rate: float | None = None  # messages per second

    @property
    def plan(self) -> MessagePlan:
        """The message's templates, parsed once (a stored version that no longer passes
        today's checks fails its messages with the reason rather than failing to load)."""
        return message_plan.plan(self.message, strict=False)


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
        message=MessageTemplate.model_validate(definition["message"]),
        audience=Audience.model_validate(definition["audience"]),
        send_rate=definition.get("send_rate"),
    )
    _versions.put((campaign_id, number), parsed)  # never stale: a version never changes
    return parsed


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
        audience=loaded.audience,
        trigger_keys=loaded.audience.trigger_keys(),
        template_keys=loaded.plan.trigger_keys,
        warnings=loaded.plan.warnings,
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
    )


def list_campaigns(session: Session, project_id: str) -> Sequence[Campaign]:
    return repository.list_for_project(session, project_id)


def check_message(session: Session, project_id: str, message: MessageTemplate) -> MessagePlan:
    """Save-time checks of the templates: syntax, filters, namespaces, and a URL field whose
    scheme is fixed in the template must be allowed for the project. Raises InvalidRequest
    naming the field, line and column."""
    try:
        checked = message_plan.plan(message)
    except TemplateProblem as exc:
        raise InvalidRequest(
            f"{exc}",
            code="invalid_template",
            path=exc.field,
            line=exc.line,
            column=exc.column,
        ) from None
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


def create(session: Session, project_id: str, spec: CampaignSpec) -> Campaign:
    check_message(session, project_id, spec.message)
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
    return campaign


def update(session: Session, campaign: Campaign, spec: CampaignSpec) -> Campaign:
    """Record a new version when the definition changed; triggers keep the one they used."""
    check_message(session, campaign.project_id, spec.message)
    if spec.name != campaign.name:
        other = repository.by_name(session, campaign.project_id, spec.name)
        if other is not None and other.id != campaign.id:
            raise InvalidRequest(
                f"Another campaign is already named {spec.name!r}.", code="campaign_name_taken"
            )
    current = repository.version(session, campaign.id, campaign.version)
    definition = spec.definition()
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
    cache.campaigns.clear()
    return campaign


def apply(session: Session, project_id: str, spec: CampaignSpec) -> tuple[Campaign, bool]:
    """Create or update by name. Returns the campaign and whether it was created."""
    existing = repository.by_name(session, project_id, spec.name)
    if existing is None:
        return create(session, project_id, spec), True
    return update(session, existing, spec), False


def set_status(session: Session, campaign: Campaign, status: Status) -> Campaign:
    if campaign.status == "archived" and status != "archived":
        raise InvalidRequest(
            "This campaign is archived; archived campaigns cannot be reactivated. Create a new "
            "campaign from its file instead.",
            code="campaign_archived",
        )
    campaign.status = status
    campaign.updated_at = utcnow()
    session.flush()
    cache.campaigns.clear()
    return campaign
