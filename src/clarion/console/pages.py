"""The console's pages. Thin like the API's endpoints: each page reads or changes state through
the same services (auth, credentials, webhooks, campaigns), so whatever it does can also be
scripted against the API.

Sign-in: a session cookie (HttpOnly, SameSite=Lax, Secure over HTTPS) holding a random token;
every form carries the session's CSRF token (the sign-in form a cookie-bound one), and failed
sign-ins are limited per source address.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from clarion.audience.rules import BUILTINS, OPERATORS, PRESENCE
from clarion.audit import service as audit
from clarion.auth import service as auth
from clarion.auth.keys import SCOPE_HELP, SCOPES
from clarion.auth.repository import get_project, list_projects
from clarion.campaigns import repository as campaign_repo
from clarion.campaigns import service as campaigns
from clarion.campaigns import trigger_plan
from clarion.console import accounts, editor, integration, testing
from clarion.console import repository as console_repo
from clarion.console.accounts import SignedIn
from clarion.credentials import service as credentials
from clarion.errors import ClarionError
from clarion.idempotency import service as idempotency_service
from clarion.messages.send import send as send_messages
from clarion.web import JSONResponse, state
from clarion.webhooks import service as webhooks

router = APIRouter(prefix="/console", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
SESSION_COOKIE = "clarion_session"
LOGIN_CSRF_COOKIE = "clarion_login_csrf"


@dataclass
class Paged:
    """One page of a list (every list in the console is paginated), and the links around it."""

    items: list[Any]
    number: int
    pages: int
    param: str

    @classmethod
    def of(cls, items: list[Any], request: Request, param: str, size: int = 25) -> Paged:
        raw = request.query_params.get(param, "1")
        pages = max(1, -(-len(items) // size))
        number = min(max(int(raw) if raw.isdigit() else 1, 1), pages)
        return cls(items[(number - 1) * size : number * size], number, pages, param)

    def __iter__(self) -> Any:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class LoginRequired(Exception):
    def __init__(self, path: str, expired: bool = False) -> None:
        self.path = path
        self.expired = expired


class CsrfRefused(Exception):
    pass


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form (the only kind the console posts), first value per field."""
    parsed = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def signed_in(request: Request) -> SignedIn:
    with state(request).db.read() as session:
        found = accounts.load_session(session, request.cookies.get(SESSION_COOKIE))
    if not isinstance(found, SignedIn):
        raise LoginRequired(request.url.path, expired=found == "expired")
    return found


Admin = Annotated[SignedIn, Depends(signed_in)]
Form = Annotated[dict[str, str], Depends(read_form)]


def checked(admin: SignedIn, form: dict[str, str]) -> None:
    if not accounts.same_token(admin.csrf, form.get("csrf")):
        raise CsrfRefused


def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, name, context, status_code=status)


def install(app: FastAPI) -> None:
    """The console's routes, static files and error pages."""
    from fastapi.staticfiles import StaticFiles

    app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=Path(__file__).parent / "static"),
              name="console-static")  # fmt: skip

    @app.exception_handler(LoginRequired)
    async def login_required(_request: Request, exc: LoginRequired) -> Response:
        target = f"/console/login?next={quote(exc.path)}"
        return RedirectResponse(target + ("&expired=1" if exc.expired else ""), 303)

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(request: Request, _exc: CsrfRefused) -> Response:
        return page(request, "message.html", 403, title="Form refused",
                    message="This form has expired or did not come from this console. Go back, "
                    "reload the page and submit it again.")  # fmt: skip


# -- signing in ---------------------------------------------------------------------------
def _cookie_options(request: Request) -> dict[str, Any]:
    return {"httponly": True, "samesite": "lax", "secure": request.url.scheme == "https",
            "path": "/console"}  # fmt: skip


def _login_page(request: Request, status: int = 200, **context: Any) -> HTMLResponse:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    with state(request).db.read() as session:
        has_admin = accounts.any_admin(session)
    response = page(request, "login.html", status, csrf=token, has_admin=has_admin,
                    next=request.query_params.get("next", ""), **context)  # fmt: skip
    response.set_cookie(LOGIN_CSRF_COOKIE, token, **_cookie_options(request))
    return response


@router.get("/login")
def login_form(request: Request) -> HTMLResponse:
    expired = request.query_params.get("expired") == "1"
    notice = "Your session expired; sign in again." if expired else None
    return _login_page(request, notice=notice)


@router.post("/login")
def login(request: Request, form: Form) -> Response:
    if not accounts.same_token(request.cookies.get(LOGIN_CSRF_COOKIE, ""), form.get("csrf")):
        raise CsrfRefused
    source = request.client.host if request.client else "unknown"
    app = state(request)
    email = form.get("email", "")
    with app.db.write() as session:
        wait = accounts.blocked_for(session, source)
        if wait is not None:
            minutes = max(1, round(wait / timedelta(minutes=1)))
            return _login_page(request, 429, email=email,
                               error=f"Too many failed sign-ins from this address. Try again in "
                               f"{minutes} minute{'s' * (minutes != 1)}.")  # fmt: skip
        admin = accounts.check_password(session, email, form.get("password", ""))
        if admin is None:
            accounts.record_failure(session, source)
            error = "That e-mail and password do not match an admin. Check both and try again."
            return _login_page(request, 401, email=email, error=error)
        accounts.clear_failures(session, source)
        token = accounts.open_session(session, admin, app.settings.console_session_hours)
    target = form.get("next", "")
    if not target.startswith("/console/") or target.startswith("//"):
        target = "/console/projects"
    response = RedirectResponse(target, 303)
    lifetime = int(app.settings.console_session_hours * 3600)
    response.set_cookie(SESSION_COOKIE, token, max_age=lifetime, **_cookie_options(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


@router.post("/logout")
def logout(request: Request, admin: Admin, form: Form) -> Response:
    checked(admin, form)
    with state(request).db.write() as session:
        accounts.close_session(session, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/console/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.get("/setup")
def setup_form(request: Request) -> Response:
    return _setup(request)


@router.post("/setup")
def setup(request: Request, form: Form) -> Response:
    return _setup(request, form)


def _setup(request: Request, form: dict[str, str] | None = None) -> Response:
    """The first admin, through the link ``clarion serve`` prints while there is none."""
    app = state(request)
    token = request.query_params.get("token", "")
    expected = request.app.state.console_setup_token
    with app.db.write() as session:
        if accounts.any_admin(session):
            return page(request, "message.html", 404, title="Set-up is done",
                        message="An admin exists already: sign in, or ask an admin to add you "
                        "with `clarion admin create`.")  # fmt: skip
        if not expected or not accounts.same_token(expected, token):
            return page(request, "message.html", 403, title="Set-up link needed",
                        message="Open the set-up link `clarion serve` printed, or create an "
                        "admin with `clarion admin create --email you@example.com`.")  # fmt: skip
        if form is None:
            return page(request, "setup.html", token=token, email="")
        email = form.get("email", "")
        if form.get("password") != form.get("confirm"):
            return page(request, "setup.html", 400, token=token, email=email,
                        error="The two passwords differ; type the same one twice.")  # fmt: skip
        try:
            accounts.create_admin(session, email, form.get("password", ""))
        except ClarionError as exc:
            return page(request, "setup.html", 400, token=token, email=email, error=exc.message)
    request.app.state.console_setup_token = ""
    return RedirectResponse("/console/login", 303)


# -- projects -----------------------------------------------------------------------------
@router.get("")
@router.get("/")
def home(_admin: Admin) -> Response:
    return RedirectResponse("/console/projects", 303)


@router.get("/projects")
def projects(request: Request, admin: Admin) -> HTMLResponse:
    return _projects_page(request, admin)


def _projects_page(
    request: Request, admin: SignedIn, status: int = 200, **context: Any
) -> HTMLResponse:
    with state(request).db.read() as session:
        found = Paged.of(list(list_projects(session)), request, "page")
    return page(request, "projects.html", status, admin=admin, projects=found, **context)


@router.post("/projects")
def create_project(request: Request, admin: Admin, form: Form) -> Response:
    checked(admin, form)
    name = form.get("name", "").strip()
    if not name or len(name) > 200:
        return _projects_page(request, admin, 400, typed=form,
                              error="Give the project a name of 1 to 200 characters.")  # fmt: skip
    with state(request).db.write() as session:
        project = auth.create_project(session, name)
    return RedirectResponse(f"/console/projects/{project.id}", 303)


def _project_page(
    request: Request, admin: SignedIn, project_id: str, status: int = 200, **context: Any
) -> HTMLResponse:
    with state(request).db.read() as session:
        project = get_project(session, project_id)
        if project is None:
            return page(request, "message.html", 404, admin=admin, title="No such project",
                        message=f"No project {project_id!r}; pick one from the list.")  # fmt: skip
        keys = Paged.of(list(auth.list_keys(session, project_id)), request, "keys_page")
        activity = console_repo.activity(session, project_id)
        listed = Paged.of(
            [(c, activity.get(c.id)) for c in campaigns.list_campaigns(session, project_id)],
            request, "campaigns_page",
        )  # fmt: skip
        providers = credentials.describe(session, project_id)
        endpoints = Paged.of(webhooks.list_endpoints(session, project_id), request, "hooks_page")
    return page(request, "project.html", status, admin=admin, project=project, keys=keys,
                campaigns=listed, providers=providers, endpoints=endpoints,
                event_types=webhooks.EVENT_TYPES, scope_help=SCOPE_HELP,
                typed=context.pop("typed", {}),
                **context)  # fmt: skip


@router.get("/projects/{project_id}")
def project(request: Request, admin: Admin, project_id: str) -> HTMLResponse:
    done = request.query_params.get("done")
    return _project_page(request, admin, project_id, notice=DONE.get(done or ""))


DONE = {
    "revoked": "The key is revoked: requests with it are refused from now on.",
    "provider-saved": "Saved. The secret parts are stored encrypted and are never shown again.",
    "provider-removed": "Removed.",
    "webhook-removed": "The endpoint is removed; nothing more is sent to it.",
}


def _changed(
    request: Request, admin: SignedIn, project_id: str, form: dict[str, str], where: str,
    change: Any, done: str | None = None, **shown: Any,
) -> Response:  # fmt: skip
    """Run ``change(session)``; on success redirect (or show what must be shown once), on a
    refusal show the page again with the error at the form and what was typed kept."""
    checked(admin, form)
    try:
        with state(request).db.write() as session:
            if get_project(session, project_id) is None:
                raise ClarionError(f"No project {project_id!r}.", code="project_not_found")
            result = change(session)
    except ClarionError as exc:
        kept = {k: v for k, v in form.items() if k not in ("csrf", "password", "key",
                                                            "service_account")}  # fmt: skip
        return _project_page(request, admin, project_id, 400, error=exc.message, error_at=where,
                             typed=kept)  # fmt: skip
    if done is not None:
        return RedirectResponse(f"/console/projects/{project_id}?done={done}#{where}", 303)
    return _project_page(request, admin, project_id, **{k: v(result) for k, v in shown.items()})


@router.post("/projects/{project_id}/keys")
def create_key(request: Request, admin: Admin, project_id: str, form: Form) -> Response:
    kind = form.get("kind", "secret")
    if kind not in ("secret", "public"):
        kind = "secret"
    scopes = [name for name in SCOPES if form.get(f"scope_{name}")]
    return _changed(
        request, admin, project_id, form, "keys",
        lambda session: auth.create_key(session, project_id, kind, form.get("name", "").strip(),  # type: ignore[arg-type]
                                        scopes, audit.admin_actor(admin.email)),
        new_key=lambda made: made.plaintext,
    )  # fmt: skip


@router.post("/projects/{project_id}/keys/{key_id}/revoke")
def revoke_key(
    request: Request, admin: Admin, project_id: str, key_id: str, form: Form
) -> Response:
    return _changed(request, admin, project_id, form, "keys",
                    lambda session: auth.revoke_key(session, project_id, key_id,
                                                    audit.admin_actor(admin.email)),
                    done="revoked")  # fmt: skip


@router.post("/projects/{project_id}/providers/{provider}")
def set_provider(
    request: Request, admin: Admin, project_id: str, provider: str, form: Form
) -> Response:
    box = state(request).box

    def change(session: Any) -> Any:
        if provider == "fcm":
            return credentials.set_fcm(session, box, project_id, form.get("service_account", ""))
        if provider == "apns":
            return credentials.set_apns(session, box, project_id, form.get("key", ""),
                                        form.get("key_id", ""), form.get("team_id", ""),
                                        form.get("topic", ""))  # fmt: skip
        if provider == "smtp":
            port = form.get("port", "")
            smtp = {**form, "port": int(port) if port.isdigit() else port}
            return credentials.set_smtp(session, box, project_id, smtp)
        raise ClarionError(f"No provider {provider!r}.", code="provider_not_found")

    return _changed(request, admin, project_id, form, f"provider-{provider}", change,
                    done="provider-saved")  # fmt: skip


@router.post("/projects/{project_id}/providers/{provider}/remove")
def remove_provider(
    request: Request, admin: Admin, project_id: str, provider: str, form: Form
) -> Response:
    return _changed(request, admin, project_id, form, f"provider-{provider}",
                    lambda session: credentials.remove(session, project_id, provider),
                    done="provider-removed")  # fmt: skip


@router.post("/projects/{project_id}/webhooks")
def add_webhook(request: Request, admin: Admin, project_id: str, form: Form) -> Response:
    allowed = state(request).settings.allowed_networks()
    events = [e for e in webhooks.EVENT_TYPES if form.get(f"event:{e}")]
    return _changed(
        request, admin, project_id, form, "webhooks",
        lambda session: webhooks.create(
            session, state(request).box, project_id, url=form.get("url", "").strip(),
            event_types=events, headers={}, description=form.get("description", "").strip(),
            allowed=allowed,
        ),
        new_secret=lambda made: made.secret,
    )  # fmt: skip


@router.post("/projects/{project_id}/webhooks/{endpoint_id}/remove")
def remove_webhook(
    request: Request, admin: Admin, project_id: str, endpoint_id: str, form: Form
) -> Response:
    return _changed(request, admin, project_id, form, "webhooks",
                    lambda session: webhooks.remove(session, project_id, endpoint_id),
                    done="webhook-removed")  # fmt: skip


# -- campaigns, triggers, the message log --------------------------------------------------
PAGE = 50


@router.get("/projects/{project_id}/campaigns/new")
def new_campaign(request: Request, admin: Admin, project_id: str) -> HTMLResponse:
    return _editor(request, admin, project_id, {"channel": "push", "match": "all"})


@router.get("/projects/{project_id}/campaigns/{campaign_id}/edit")
def edit_campaign(
    request: Request, admin: Admin, project_id: str, campaign_id: str
) -> HTMLResponse:
    with state(request).db.read() as session:
        try:
            out = campaigns.to_out(session, campaigns.get(session, project_id, campaign_id))
        except ClarionError as exc:
            return page(request, "message.html", 404, admin=admin, title="No such campaign",
                        message=exc.message)  # fmt: skip
    form = editor.form_from_campaign(out)
    form["campaign_id"] = campaign_id
    return _editor(request, admin, project_id, form)


def _editor(
    request: Request, admin: SignedIn, project_id: str, form: dict[str, str],
    status: int = 200, error: str | None = None,
) -> HTMLResponse:  # fmt: skip
    with state(request).db.read() as session:
        found = get_project(session, project_id)
        if found is None:
            return page(request, "message.html", 404, admin=admin, title="No such project",
                        message=f"No project {project_id!r}.")  # fmt: skip
        properties = editor.property_names(session, project_id)
    builtins = sorted(BUILTINS.items())
    types = {name: spec[1] for name, spec in builtins} | dict(properties)
    operators = {kind: [*ops, *PRESENCE] for kind, ops in OPERATORS.items()}
    return page(request, "editor.html", status, admin=admin, project=found, form=form,
                error=error, groups=range(editor.GROUPS), rows=range(editor.ROWS),
                builtins=builtins, properties=properties, operators=editor.OPERATOR_LABELS,
                picker={"types": types, "operators": operators,
                        "builtins": [name for name, _ in builtins]})  # fmt: skip


@router.post("/projects/{project_id}/campaigns/save")
def save_campaign(request: Request, admin: Admin, project_id: str, form: Form) -> Response:
    checked(admin, form)
    campaign_id = form.get("campaign_id", "")
    try:
        with state(request).db.write() as session:
            if get_project(session, project_id) is None:
                raise ClarionError(f"No project {project_id!r}.", code="project_not_found")
            if campaign_id:
                edited = campaigns.get(session, project_id, campaign_id)
                spec = editor.spec_from_form(form, campaigns.definition(session, edited))
                saved = campaigns.update(session, edited, spec, audit.admin_actor(admin.email))
            else:
                spec = editor.spec_from_form(form)
                saved = campaigns.create(session, project_id, spec, audit.admin_actor(admin.email))
    except editor.FormProblem as exc:
        return _editor(request, admin, project_id, form, 400, str(exc))
    except ClarionError as exc:
        where = exc.details.get("path")
        return _editor(request, admin, project_id, form, 400,
                       f"{where}: {exc.message}" if where and where not in exc.message
                       else exc.message)  # fmt: skip
    return RedirectResponse(f"/console/projects/{project_id}/campaigns/{saved.id}", 303)


@router.post("/projects/{project_id}/campaigns/preview")
def preview_campaign(request: Request, admin: Admin, project_id: str, form: Form) -> Response:
    """The editor's live preview (JSON, for its script)."""
    checked(admin, form)
    with state(request).db.read() as session:
        shown = editor.preview(session, project_id, form, form.get("sample", ""),
                               form.get("sample_user", "").strip())  # fmt: skip
    return JSONResponse(shown)


@router.get("/projects/{project_id}/campaigns/{campaign_id}")
def campaign(request: Request, admin: Admin, project_id: str, campaign_id: str) -> HTMLResponse:
    return campaign_page(request, admin, project_id, campaign_id)


def campaign_page(
    request: Request, admin: SignedIn, project_id: str, campaign_id: str, status: int = 200,
    **context: Any,
) -> HTMLResponse:  # fmt: skip
    before = request.query_params.get("before")
    with state(request).db.read() as session:
        try:
            found_campaign = campaigns.get(session, project_id, campaign_id)
        except ClarionError as exc:
            return page(request, "message.html", 404, admin=admin, title="No such campaign",
                        message=exc.message)  # fmt: skip
        out = campaigns.to_out(session, found_campaign)
        found = console_repo.triggers(session, campaign_id, before, PAGE + 1)
        counts = console_repo.trigger_counts(session, [t.id for t in found[:PAGE]])
        replays = idempotency_service.replays_of(session, [t.id for t in found[:PAGE]])
        versions = list(campaign_repo.versions(session, campaign_id))
    more = len(found) > PAGE
    diff = _diff(versions, request.query_params.get("from"), request.query_params.get("to"))
    base = str(request.base_url)
    return page(request, "campaign.html", status, admin=admin, project_id=project_id,
                snippets=integration.snippets(out, base, project_id),
                campaign=out, triggers=found[:PAGE], counts=counts, versions=versions,
                replays=replays,
                diff=diff, next_before=found[PAGE - 1].created_at.isoformat() if more else None,
                **context)  # fmt: skip


def _diff(versions: list[Any], old: str | None, new: str | None) -> list[str] | None:
    """A unified diff of two versions' definitions (as YAML), line by line."""
    import difflib

    import yaml

    by_number = {str(v.version): v.definition for v in versions}
    if not old or not new or old not in by_number or new not in by_number:
        return None

    def lines(number: str) -> list[str]:
        return yaml.safe_dump(by_number[number], sort_keys=False, allow_unicode=True).splitlines()

    return list(difflib.unified_diff(lines(old), lines(new), f"version {old}", f"version {new}",
                                     lineterm=""))  # fmt: skip


@router.get("/projects/{project_id}/campaigns/{campaign_id}/plan.json")
def plan_download(request: Request, admin: Admin, project_id: str, campaign_id: str) -> Response:
    """The campaign's .clix/api-trigger-plan.json, as a download."""
    with state(request).db.read() as session:
        try:
            out = campaigns.to_out(session, campaigns.get(session, project_id, campaign_id))
        except ClarionError as exc:
            return page(request, "message.html", 404, admin=admin, title="No such campaign",
                        message=exc.message)  # fmt: skip
    body = orjson.dumps(trigger_plan.plan(out), option=orjson.OPT_INDENT_2) + b"\n"
    return Response(body, media_type="application/json", headers={
        "Content-Disposition": 'attachment; filename="api-trigger-plan.json"'})  # fmt: skip


@router.post("/projects/{project_id}/campaigns/{campaign_id}/test")
def send_test(
    request: Request, admin: Admin, project_id: str, campaign_id: str, form: Form
) -> Response:
    """Send the campaign's message, rendered for each chosen device, to those devices only:
    the audience is not applied (a test send through messages:send)."""
    checked(admin, form)
    app = state(request)
    devices = [d.strip() for d in form.get("devices", "").split(",") if d.strip()][:20]
    if not devices:
        return campaign_page(request, admin, project_id, campaign_id, 400, typed=form,
                             error="Give one or more device ids, separated by commas.")  # fmt: skip
    try:
        with app.db.read() as session:
            notes = testing.render_for_devices(session, project_id, campaign_id, devices,
                                               form.get("sample", ""))  # fmt: skip
        results = send_messages(app.db, app.providers, project_id, notes)
    except ClarionError as exc:
        return campaign_page(request, admin, project_id, campaign_id, 400, typed=form,
                             error=exc.message)  # fmt: skip
    # One result per device target, in order (messages:send answers each target once).
    tested = list(zip(devices, results, strict=False))
    return campaign_page(request, admin, project_id, campaign_id, typed=form,
                         test_results=tested)  # fmt: skip


@router.post("/projects/{project_id}/campaigns/{campaign_id}/status")
def campaign_status(
    request: Request, admin: Admin, project_id: str, campaign_id: str, form: Form
) -> Response:
    checked(admin, form)
    wanted = form.get("status", "")
    if wanted not in ("active", "paused", "archived"):
        return campaign_page(request, admin, project_id, campaign_id, 400,
                             error="Choose activate, pause or archive.")  # fmt: skip
    try:
        with state(request).db.write() as session:
            found = campaigns.get(session, project_id, campaign_id)
            campaigns.set_status(session, found, wanted, audit.admin_actor(admin.email))  # type: ignore[arg-type]
    except ClarionError as exc:
        return campaign_page(request, admin, project_id, campaign_id, 400, error=exc.message)
    return RedirectResponse(f"/console/projects/{project_id}/campaigns/{campaign_id}", 303)


@router.get("/projects/{project_id}/triggers/{trigger_id}")
def trigger_page(request: Request, admin: Admin, project_id: str, trigger_id: str) -> Response:
    import time

    from clarion.campaigns.service import load_version
    from clarion.delivery import repository as delivery_repo
    from clarion.messages import repository as messages_repo
    from clarion.storage.models import Trigger
    from clarion.triggers import explain, progress

    q = request.query_params
    filters = {k: q.get(k) or None for k in ("status", "user", "device")}
    who = (q.get("why") or "").strip()
    with state(request).db.read() as session:
        trigger = session.get(Trigger, trigger_id)
        if trigger is None or trigger.project_id != project_id:
            return page(request, "message.html", 404, admin=admin, title="No such trigger",
                        message=f"No trigger {trigger_id!r} in this project.")  # fmt: skip
        counts = progress.counts(session, trigger)
        rows = messages_repo.page(session, trigger.id, filters["status"], q.get("after"),
                                  PAGE + 1, filters["user"], filters["device"])  # fmt: skip
        shown = rows[:PAGE]
        attempts = delivery_repo.attempts_for(session, [m.id for m in shown])
        steps = []
        if who:
            version = load_version(session, trigger.campaign_id, trigger.campaign_version)
            steps = explain.explain(session, trigger, version, who, time.time())
        parent = campaigns.get(session, project_id, trigger.campaign_id)
    total = trigger.matched if trigger.matched is not None else sum(counts.values())
    settled = sum(n for s, n in counts.items() if s in ("sent", "failed", "skipped"))
    more = len(rows) > PAGE
    return page(request, "trigger.html", admin=admin, project_id=project_id, trigger=trigger,
                campaign=parent, counts=counts, total=total, settled=settled,
                messages=shown, attempts=attempts, filters=filters, who=who, steps=steps,
                next_after=rows[PAGE - 1].id if more else None,
                live=trigger.status not in ("completed", "failed", "cancelled"))  # fmt: skip


# -- users and devices ---------------------------------------------------------------------
@router.get("/projects/{project_id}/users")
def users_page(request: Request, admin: Admin, project_id: str) -> HTMLResponse:
    search = (request.query_params.get("q") or "").strip()
    after = request.query_params.get("after")
    with state(request).db.read() as session:
        found_project = get_project(session, project_id)
        if found_project is None:
            return page(request, "message.html", 404, admin=admin, title="No such project",
                        message=f"No project {project_id!r}.")  # fmt: skip
        found = console_repo.users(session, project_id, search, after, PAGE + 1)
    last = found[PAGE - 1][0].project_user_id if len(found) > PAGE else None
    return page(request, "users.html", admin=admin, project=found_project, users=found[:PAGE],
                search=search, next_after=last)  # fmt: skip


@router.get("/projects/{project_id}/users/{project_user_id}")
def user_page(
    request: Request, admin: Admin, project_id: str, project_user_id: str
) -> HTMLResponse:
    with state(request).db.read() as session:
        found = console_repo.user_detail(session, project_id, project_user_id)
    if found is None:
        return page(request, "message.html", 404, admin=admin, title="No such user",
                    message=f"No user {project_user_id!r} in this project; check the id the "
                    "backend identifies it with.")  # fmt: skip
    user, devices, events = found
    return page(request, "user.html", admin=admin, project_id=project_id, user=user,
                devices=devices, events=events)  # fmt: skip
