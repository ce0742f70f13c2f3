"""The console in a real browser (Debian's chromium through Playwright) against a real server:
sign-in, projects, keys shown once, revocation, provider and webhook forms, layouts at 1280
and 390 px; and over plain HTTP: CSRF refusals, session expiry, the failed sign-in limit,
cookie flags, the first-run set-up link and `clarion admin create`. Screenshots of the main
pages go to var/screenshots/."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from clarion.console import accounts
from clarion.storage.db import Database
from clarion.storage.models import ConsoleSession, Project, utcnow
from tests.conftest import Server

EMAIL, PASSWORD = "ops@shop.example", "correct horse battery"
SCREENSHOTS = Path(__file__).resolve().parents[1] / "var" / "screenshots"
CHROMIUM = "/usr/bin/chromium"


def make_admin(db: Database) -> None:
    with db.write() as session:
        accounts.create_admin(session, EMAIL, PASSWORD)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is needed for the console's browser tests in CI")
        pytest.skip(f"{CHROMIUM} is not installed here (apt install chromium; CI requires it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def fits(page: Any) -> bool:
    """No horizontal scrolling."""
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_sign_in_create_a_project_and_manage_keys_in_a_browser(
    server_factory: Any, db: Database, browser: Any
) -> None:
    server: Server = server_factory(webhook_allowed_networks="127.0.0.0/8")
    make_admin(db)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.on("dialog", lambda dialog: dialog.accept())

    page.goto(server.url + "/console/projects")  # not signed in: to the sign-in page
    assert page.url.startswith(server.url + "/console/login?next=")
    page.get_by_label("E-mail").fill(EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    assert "do not match an admin" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("E-mail").input_value() == EMAIL  # what was typed is kept
    page.screenshot(path=str(SCREENSHOTS / "console-sign-in.png"))
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.url == server.url + "/console/projects"

    page.get_by_label("Name").fill("Shop")
    page.get_by_role("button", name="Create project").click()
    assert re.search(r"/console/projects/[0-9a-f-]{36}$", page.url)
    project_id = page.locator("#project-id").inner_text()
    assert page.get_by_role("heading", name="Shop").is_visible()

    page.get_by_label("Name", exact=True).fill("backend")
    assert page.get_by_role("checkbox", name="trigger", exact=True).is_checked()  # least privilege
    assert not page.get_by_role("checkbox", name="admin", exact=True).is_checked()
    page.get_by_role("checkbox", name="read", exact=True).check()
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text()
    assert "shown this once" in page.locator(".reveal").inner_text()
    assert page.locator("button.copy[data-copy=new-key]").is_visible()
    page.screenshot(path=str(SCREENSHOTS / "console-project.png"), full_page=True)
    headers = {"X-Clix-Project-ID": project_id, "X-Clix-API-Key": key}
    assert httpx.get(server.url + "/api/v1/campaigns", headers=headers).status_code == 200
    refused = httpx.post(server.url + "/api/v1/campaigns", json={}, headers=headers)
    assert refused.status_code == 403 and "'admin' scope" in refused.json()["error"]["message"]
    assert "trigger, read" in page.locator("#keys").inner_text()

    page.goto(f"{server.url}/console/projects/{project_id}")  # shown once: not any more
    assert page.locator("#new-key").count() == 0 and key not in page.content()
    page.get_by_role("button", name="Revoke").click()
    assert "The key is revoked" in page.get_by_role("status").first.inner_text()
    assert httpx.get(server.url + "/api/v1/campaigns", headers=headers).status_code == 401

    # A refused provider form shows the error at the form and keeps what was typed.
    page.locator("#provider-smtp summary").click()
    page.get_by_label("Host").fill("smtp.example.com")
    page.get_by_label("Port").fill("not-a-port")
    page.get_by_label("From address").fill("orders@shop.example")
    page.get_by_role("button", name="Save SMTP").click()
    alert = page.locator("#provider-smtp .error").inner_text()
    assert "port" in alert and page.get_by_label("Host").input_value() == "smtp.example.com"
    page.get_by_label("Port").fill("587")
    page.get_by_label("Password").fill("relay-secret-1")
    page.get_by_role("button", name="Save SMTP").click()
    assert "configured" in page.locator("#provider-smtp summary").inner_text()
    assert "relay-secret-1" not in page.content()

    page.get_by_label("URL").fill("http://127.0.0.1:9/hooks")
    page.get_by_label("PUSH_FAILED").check()
    page.get_by_role("button", name="Add endpoint").click()
    assert page.locator("#new-secret").inner_text().startswith("whsec_")
    assert "PUSH_FAILED" in page.locator("#webhooks table").inner_text()
    assert fits(page)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(server.url + f"/console/projects/{project_id}")
    assert fits(page)
    page.screenshot(path=str(SCREENSHOTS / "console-project-390.png"), full_page=True)
    page.get_by_role("button", name="Sign out").click()
    assert "/console/login" in page.url


def sign_in(server: Server) -> httpx.Client:
    client = httpx.Client(base_url=server.url)
    form = client.get("/console/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    r = client.post("/console/login", data={"csrf": token.group(1), "email": EMAIL,
                                            "password": PASSWORD})  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/console/projects"
    return client


def csrf_of(client: httpx.Client) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/projects").text)
    assert found is not None
    return found.group(1)


def test_forms_without_the_sessions_csrf_token_are_refused(server: Server, db: Database) -> None:
    make_admin(db)
    client = sign_in(server)
    for data in ({"name": "Sneaky"}, {"name": "Sneaky", "csrf": "forged"}):
        r = client.post("/console/projects", data=data)
        assert r.status_code == 403 and "reload the page" in r.text
    with db.read() as session:
        assert session.scalars(select(Project).where(Project.name == "Sneaky")).all() == []
    r = client.post("/console/projects", data={"name": "Real", "csrf": csrf_of(client)})
    assert r.status_code == 303
    # The sign-in form's token is bound to its cookie: a token alone is refused.
    r = httpx.post(server.url + "/console/login",
                   data={"csrf": "x", "email": EMAIL, "password": PASSWORD})  # fmt: skip
    assert r.status_code == 403


def test_cookie_flags_and_session_expiry(server: Server, db: Database) -> None:
    make_admin(db)
    client = sign_in(server)
    assert client.get("/console/projects").status_code == 200
    with db.write() as session:
        session.execute(update(ConsoleSession).values(expires_at=utcnow()))
    r = client.get("/console/projects")
    assert r.status_code == 303 and r.headers["location"].endswith("&expired=1")
    assert "Your session expired; sign in again." in client.get(r.headers["location"]).text

    login = httpx.get(server.url + "/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert token is not None
    r = httpx.post(server.url + "/console/login", cookies=login.cookies,
                   data={"csrf": token.group(1), "email": EMAIL, "password": PASSWORD})  # fmt: skip
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("clarion_session="))
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=lax" in flags and "path=/console" in flags
    assert "secure" not in flags  # plain HTTP here; set over HTTPS


def test_failed_sign_ins_are_limited_per_address(server: Server, db: Database) -> None:
    make_admin(db)
    client = httpx.Client(base_url=server.url)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/login").text)
    assert token is not None
    for _ in range(accounts.MAX_FAILURES):
        r = client.post("/console/login", data={"csrf": token.group(1), "email": EMAIL,
                                                "password": "wrong password"})  # fmt: skip
        assert r.status_code == 401
    r = client.post("/console/login", data={"csrf": token.group(1), "email": EMAIL,
                                            "password": PASSWORD})  # fmt: skip
    assert r.status_code == 429 and "Too many failed sign-ins" in r.text
    assert "clarion_session" not in r.cookies


def test_the_first_run_set_up_link(server: Server, db: Database) -> None:
    token = server.app.state.console_setup_token
    assert token  # no admin yet
    assert "no admin yet" in server.client.get("/console/login").text
    assert server.client.get("/console/setup?token=wrong").status_code == 403
    setup = f"/console/setup?token={token}"
    r = server.client.post(setup, data={"email": EMAIL, "password": PASSWORD, "confirm": "x"})
    assert r.status_code == 400 and "passwords differ" in r.text and EMAIL in r.text
    r = server.client.post(setup, data={"email": EMAIL, "password": "short", "confirm": "short"})
    assert r.status_code == 400 and "at least 12 characters" in r.text
    r = server.client.post(setup, data={"email": EMAIL, "password": PASSWORD, "confirm": PASSWORD})
    assert r.status_code == 303
    assert server.client.get(f"/console/setup?token={token}").status_code == 404
    sign_in(server)


def test_admin_create_from_the_cli(cli_env: Any, db: Database, monkeypatch: Any) -> None:
    from clarion.cli import app as cli

    monkeypatch.setenv("CLARION_ADMIN_PASSWORD", "short")
    run = cli_env.invoke(cli, ["admin", "create", "--email", EMAIL])
    assert run.exit_code == 1 and "at least 12 characters" in run.output
    monkeypatch.setenv("CLARION_ADMIN_PASSWORD", PASSWORD)
    run = cli_env.invoke(cli, ["admin", "create", "--email", EMAIL])
    assert run.exit_code == 0 and "admin ops@shop.example created" in run.output
    with db.read() as session:
        admin = accounts.check_password(session, EMAIL, PASSWORD)
    assert admin is not None and admin.password_hash.startswith("$argon2id$")
    assert PASSWORD not in admin.password_hash
    run = cli_env.invoke(cli, ["admin", "create", "--email", EMAIL])
    assert run.exit_code == 1 and "exists already" in run.output


def sign_in_page(browser: Any, server: Server, width: int = 1280, height: int = 800) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(server.url + "/console/login")
    page.get_by_label("E-mail").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert page.url == server.url + "/console/projects"
    return page


def test_activate_trigger_watch_and_ask_why_in_a_browser(
    server: Server, db: Database, browser: Any
) -> None:
    from tests.conftest import make_project
    from tests.helpers import PICKUP, PROPS, create_campaign, store_pickup

    make_admin(db)
    project = make_project(db, "Pickup shop")
    store_pickup(server.client, project)  # the staff and customers of two cities
    draft = create_campaign(server.client, project, {**PICKUP, "name": "Pickup (draft)",
                                                     "status": "draft"})  # fmt: skip
    page = sign_in_page(browser, server)
    page.get_by_role("link", name="Pickup shop").click()
    page.get_by_role("link", name="Pickup (draft)").click()
    assert page.locator("#campaign-status").inner_text() == "draft"
    assert "trigger.store_location" in page.locator("#summary").inner_text()
    page.get_by_role("button", name="Activate").click()
    assert page.locator("#campaign-status").inner_text() == "active"

    r = server.client.post(f"/api/v1/campaigns/{draft}:trigger", headers=project.headers,
                           json={"properties": PROPS})  # fmt: skip
    trigger_id = r.json()["trigger_id"]
    page.reload()
    page.get_by_role("link", name=re.compile(r"\d{4}-\d\d-\d\d")).first.click()
    assert trigger_id in page.url
    page.wait_for_function("document.querySelector('#trigger-status').textContent"
                           " === 'completed'", timeout=15_000)  # fmt: skip
    assert page.locator("#progress-bar").get_attribute("value") == "2"
    statuses = page.locator("#log tbody .status").all_inner_texts()
    assert statuses == ["sent", "sent"]
    assert "Order #ORD-12345 from Jamie Chen" in page.locator("#log table").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "console-trigger.png"), full_page=True)

    page.get_by_label("Project user id or device id").fill("ny-cust-1")  # another city's
    page.get_by_role("button", name="Explain").click()
    steps = page.locator("ol.steps").inner_text()
    assert "✔ Target" in steps
    assert "✘ Condition" in steps and "store_location" in steps and "'customer'" in steps
    assert "'New York'" in steps and "'San Francisco'" in steps  # the values compared
    assert "No message for this user in this trigger." in steps
    page.screenshot(path=str(SCREENSHOTS / "console-why.png"), full_page=True)

    page.get_by_label("User", exact=True).fill("sf-staff-1")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("#log tbody tr").count() == 1
    log_text = page.locator("#log").inner_text()
    assert re.search(r"#1 \d\d:\d\d:\d\d sent", log_text)  # each attempt and its outcome
    page.get_by_label("Project user id or device id").fill("nobody-here")
    page.get_by_role("button", name="Explain").click()
    assert "No user or device 'nobody-here'" in page.locator("ol.steps").inner_text()
    assert fits(page)
    page.set_viewport_size({"width": 390, "height": 844})
    for path in (page.url, f"{server.url}/console/projects/{project.id}/campaigns/{draft}",
                 f"{server.url}/console/projects/{project.id}/users",
                 f"{server.url}/console/projects"):  # fmt: skip
        page.goto(path)
        assert fits(page), path


def test_build_the_store_pickup_campaign_in_the_editor(
    server: Server, db: Database, browser: Any
) -> None:
    from tests.conftest import make_project
    from tests.helpers import store_pickup

    make_admin(db)
    project = make_project(db, "Editor shop")
    store_pickup(server.client, project)
    page = sign_in_page(browser, server)
    page.goto(f"{server.url}/console/projects/{project.id}/campaigns/new")
    page.get_by_label("Name", exact=True).fill("Staff pickup alert")
    page.get_by_label("Title").fill("New pickup order")
    body = page.get_by_label("Body", exact=True)
    body.fill("Order #{{ trigger.order_id }} from {{ trigger.customer_name }}")
    sample = page.get_by_label("Sample trigger properties (JSON)")
    sample.fill('{"store_location": "San Francisco", "order_id": "A-1", "customer_name": "Jo"}')
    page.fill("#c0_0_attribute", "user_role")
    page.select_option("#c0_0_operator", "eq")
    page.fill("#c0_0_value", "store_staff")
    page.fill("#c0_1_attribute", "store_location")
    page.select_option("#c0_1_operator", "eq")
    page.fill("#c0_1_value", "{{ trigger.store_location }}")
    # Operators by type: a boolean attribute offers only the boolean and presence operators.
    page.fill("#c2_0_attribute", "is_push_permission_granted")
    enabled = page.eval_on_selector_all(
        "#c2_0_operator option", "(os) => os.filter((o) => !o.disabled).map((o) => o.value)"
    )
    assert enabled == ["is_true", "is_false", "exists", "not_exists"]
    assert page.locator("#c2_0_operator").input_value() == "is_true"
    page.fill("#c2_0_attribute", "")
    count = page.locator("#preview-count")
    page.wait_for_function("document.querySelector('#preview-count').textContent"
                           ".startsWith('2 matching')")  # fmt: skip
    assert page.locator("#preview-body").inner_text() == "Order #A-1 from Jo"
    assert "bytes" in page.locator("#preview-bytes").inner_text()
    sample.fill('{"store_location": "New York", "order_id": "A-1", "customer_name": "Jo"}')
    page.wait_for_function("document.querySelector('#preview-count').textContent"
                           ".startsWith('1 matching')")  # fmt: skip
    assert "1 matching recipient" in count.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "console-editor.png"), full_page=True)

    # A template syntax error shows inline, with where it is; saving keeps what was typed.
    page.get_by_label("Body", exact=True).fill("Order #{{ trigger.order_id ")
    page.wait_for_function("!document.querySelector('#preview-error').hidden")
    assert "line 1" in page.locator("#preview-error").inner_text()
    page.get_by_role("button", name="Save campaign").click()
    assert "message.body" in page.locator("#save-error").inner_text()
    assert page.get_by_label("Name", exact=True).input_value() == "Staff pickup alert"
    assert page.locator("#c0_1_value").input_value() == "{{ trigger.store_location }}"

    # A fourth attribute is refused, saying why.
    page.get_by_label("Body", exact=True).fill("Order #{{ trigger.order_id }}")
    page.fill("#c1_0_attribute", "platform")
    page.fill("#c1_0_value", "IOS")
    page.fill("#c1_1_attribute", "locale_region")
    page.fill("#c1_1_value", "US")
    page.get_by_role("button", name="Save campaign").click()
    assert "at most 3" in page.locator("#save-error").inner_text()
    page.fill("#c1_0_attribute", "")
    page.fill("#c1_1_attribute", "")
    page.get_by_role("button", name="Save campaign").click()
    assert "/campaigns/" in page.url and "Staff pickup alert" in page.locator("h1").inner_text()
    page.get_by_role("button", name="Activate").click()
    assert page.locator("#campaign-status").inner_text() == "active"
    shown = server.client.get("/api/v1/campaigns", headers=project.headers).json()
    saved = next(c for c in shown["campaigns"] if c["name"] == "Staff pickup alert")
    assert saved["trigger_keys"] == ["store_location"] and saved["status"] == "active"
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{server.url}/console/projects/{project.id}/campaigns/{saved['id']}/edit")
    assert fits(page) and page.locator("#c0_0_attribute").input_value() == "user_role"


def test_versions_diff_and_a_test_send(server: Server, db: Database, browser: Any) -> None:
    from tests.conftest import make_project
    from tests.helpers import PICKUP, add_user, create_campaign

    make_admin(db)
    project = make_project(db, "Versions shop")
    campaign_id = create_campaign(server.client, project, PICKUP)
    changed = {**PICKUP, "message": {**PICKUP["message"], "title": "Pickup ready"}}
    r = server.client.put(f"/api/v1/campaigns/{campaign_id}", headers=project.headers,
                          json=changed)  # fmt: skip
    assert r.status_code == 200, r.text
    add_user(server.client, project, "ny-cust-9", {"user_role": "customer"}, [{"id": "d-9"}])
    page = sign_in_page(browser, server)
    page.goto(f"{server.url}/console/projects/{project.id}/campaigns/{campaign_id}")
    page.get_by_role("button", name="Compare").click()
    diff = page.locator("#diff").inner_text()
    assert "-  title: New pickup order" in diff and "+  title: Pickup ready" in diff

    # The customer is outside the audience: a test send reaches the device anyway.
    page.get_by_label("Device ids (comma-separated, at most 20)").fill("d-9, missing-device")
    page.get_by_label("Sample trigger properties (JSON)").fill('{"order_id": "T-1"}')
    page.get_by_role("button", name="Send test").click()
    rows = page.locator("#test-results tbody tr").all_inner_texts()
    assert rows[0].startswith("d-9\tsent") and "missing-device\tfailed" in rows[1]
    assert "unknown_device" in rows[1]
    page.screenshot(path=str(SCREENSHOTS / "console-campaign.png"), full_page=True)


def test_users_and_devices_browser(server: Server, db: Database, browser: Any) -> None:
    from tests.conftest import make_project
    from tests.helpers import add_user

    make_admin(db)
    project = make_project(db, "People shop")
    for n in range(3):
        add_user(server.client, project, f"staff-{n}", {"user_role": "store_staff", "n": n},
                 [{"id": f"dev-{n}", "platform": "ios"}])  # fmt: skip
    add_user(server.client, project, "customer-1", {"user_role": "customer"}, [])
    r = server.client.post("/api/v1/events", headers=project.sdk_headers, json={"events": [
        {"device_id": "dev-1", "name": "SESSION_START", "source_type": "SDK", "properties": {}},
    ]})  # fmt: skip
    assert r.status_code == 200, r.text
    page = sign_in_page(browser, server)
    page.goto(f"{server.url}/console/projects/{project.id}")
    page.get_by_role("link", name="Users and devices").click()
    assert page.locator("#users tbody tr").count() == 4
    page.get_by_label("Project user id starts with").fill("staff-")
    page.get_by_role("button", name="Search").click()
    assert page.locator("#users tbody tr").count() == 3
    page.get_by_role("link", name="staff-1").click()
    assert '"store_staff"' in page.locator("#properties").inner_text()
    devices = page.locator("#devices").inner_text()
    assert "dev-1" in devices and "IOS" in devices and "token ✔" in devices
    assert "SESSION_START" in page.locator("#events").inner_text()
    page.goto(f"{server.url}/console/projects/{project.id}/users/nobody")
    assert "No user 'nobody'" in page.locator(".error").inner_text()


def test_email_and_webhook_campaigns_in_the_editor(
    server: Server, db: Database, browser: Any
) -> None:
    from tests.conftest import make_project
    from tests.helpers import add_user

    make_admin(db)
    project = make_project(db, "Mail shop")
    add_user(server.client, project, "ann", {"email": "ann@example.com", "name": "<Ann>"}, [])
    page = sign_in_page(browser, server)
    page.goto(f"{server.url}/console/projects/{project.id}/campaigns/new")
    page.get_by_label("Name", exact=True).fill("Receipt")
    page.get_by_label("Channel").select_option("email")
    assert page.locator("#message").is_hidden() and page.locator("#email").is_visible()
    page.get_by_label("Subject").fill("Order {{ trigger.order_id }} confirmed")
    page.get_by_label("Text").fill("Hi {{ user.name }}")
    page.get_by_label("HTML (values are escaped)").fill("<p>Hi {{ user.name }}</p>")
    page.get_by_label("Sample trigger properties (JSON)").fill('{"order_id": "R-1"}')
    page.get_by_label("Preview as user (optional)").fill("ann")
    page.wait_for_function("document.querySelector('#preview-title').textContent"
                           " === 'Order R-1 confirmed'")  # fmt: skip
    assert page.locator("#preview-body").inner_text() == "Hi <Ann>"
    page.get_by_role("button", name="Save campaign").click()
    shown = server.client.get("/api/v1/campaigns", headers=project.headers).json()["campaigns"]
    (receipt,) = [c for c in shown if c["name"] == "Receipt"]
    assert receipt["channel"] == "email" and receipt["email"]["html"] == "<p>Hi {{ user.name }}</p>"

    page.goto(f"{server.url}/console/projects/{project.id}/campaigns/new")
    page.get_by_label("Name", exact=True).fill("To chat")
    page.get_by_label("Channel").select_option("webhook")
    page.get_by_label("URL", exact=True).fill("https://hooks.example.com/orders")
    page.get_by_label("Body (JSON; every string is a template)").fill('{"text": "Order {{ trigger')
    page.get_by_role("button", name="Save campaign").click()
    assert "webhook.body: not valid JSON" in page.locator("#save-error").inner_text()
    page.get_by_label("Body (JSON; every string is a template)").fill(
        '{"text": "Order {{ trigger.order_id }}", "n": 1}'
    )
    page.get_by_role("button", name="Save campaign").click()
    assert "To chat" in page.locator("h1").inner_text()
    page.get_by_role("link", name="Edit").click()
    assert '"n": 1' in page.get_by_label("Body (JSON; every string is a template)").input_value()


def test_lists_are_paginated(server: Server, db: Database) -> None:
    from clarion.auth import service as auth

    make_admin(db)
    with db.write() as session:
        for n in range(30):
            auth.create_project(session, f"Project {n:02d}")
    client = sign_in(server)
    first = client.get("/console/projects").text
    assert len(re.findall(r">Project \d\d</a>", first)) == 25
    assert "page 1 of 2" in first and "Next →" in first
    second = client.get("/console/projects?page=2").text
    names = re.findall(r">Project (\d\d)</a>", first + second)
    assert sorted(names) == [f"{n:02d}" for n in range(30)]  # every project, once
    assert "page 2 of 2" in second and "← Previous" in second
    assert "page 2 of 2" in client.get("/console/projects?page=99").text  # clamped


def test_the_integration_panel_and_the_trigger_plan(server: Server, db: Database) -> None:
    from clarion_client import plan as plans

    from tests.conftest import make_project
    from tests.helpers import PICKUP, create_campaign

    make_admin(db)
    project = make_project(db, "Plan shop")
    campaign_id = create_campaign(server.client, project, PICKUP)
    client = sign_in(server)
    shown = client.get(f"/console/projects/{project.id}/campaigns/{campaign_id}").text
    assert f"{server.url}/api/v1/campaigns/{campaign_id}:trigger" in shown
    assert "&#34;store_location&#34;: &#34;example&#34;" in shown  # pre-filled, escaped
    assert "clix.trigger_campaign(" in shown and "process.env.CLIX_API_KEY" in shown
    r = client.get(f"/console/projects/{project.id}/campaigns/{campaign_id}/plan.json")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    data = r.json()
    assert data["campaign_id"] == campaign_id
    assert data["dynamic_filter_keys"] == ["store_location"]
    assert set(data["properties"]) == {"store_location", "order_id", "customer_name",
                                       "item_count", "pickup_time"}  # fmt: skip
    verdict = plans.validate(data)
    assert verdict.passed() and verdict.errors == [], verdict.errors


def test_the_triggers_list_marks_idempotent_replays(server: Server, db: Database) -> None:
    from tests.conftest import make_project
    from tests.helpers import PROPS, store_pickup

    make_admin(db)
    project = make_project(db, "Replay shop")
    campaign_id = store_pickup(server.client, project)
    for _ in range(3):  # the first, then two retries of the same request
        r = server.client.post(f"/api/v1/campaigns/{campaign_id}:trigger",
                               json={"properties": PROPS},
                               headers={**project.headers, "Idempotency-Key": "job-7"})  # fmt: skip
        assert r.status_code == 200
    client = sign_in(server)
    shown = client.get(f"/console/projects/{project.id}/campaigns/{campaign_id}").text
    assert "replayed 2\u00d7 (Idempotency-Key)" in shown


def test_saving_in_the_editor_keeps_the_settings_it_does_not_show(
    server: Server, db: Database
) -> None:
    from clarion.campaigns.schemas import CampaignOut
    from clarion.console import editor
    from tests.conftest import make_project
    from tests.helpers import PICKUP, create_campaign

    make_admin(db)
    project = make_project(db, "Keep shop")
    kept = {"send_rate": 5.0, "push": {"android": {"priority": "high"}},
            "trigger_schema": {"store_location": {"type": "string", "required": True}}}  # fmt: skip
    campaign_id = create_campaign(server.client, project, {**PICKUP, **kept})
    url = f"/api/v1/campaigns/{campaign_id}"
    out = CampaignOut.model_validate(server.client.get(url, headers=project.headers).json())
    client = sign_in(server)
    form = {**editor.form_from_campaign(out), "title": "Edited", "campaign_id": campaign_id,
            "csrf": csrf_of(client)}  # fmt: skip
    r = client.post(f"/console/projects/{project.id}/campaigns/save", data=form)
    assert r.status_code == 303, r.text
    versions = server.client.get(url + "/versions", headers=project.headers).json()["versions"]
    latest = max(versions, key=lambda v: v["version"])["definition"]
    assert latest["message"]["title"] == "Edited"
    assert latest["send_rate"] == 5.0
    assert latest["push"]["android"]["priority"] == "high"
    assert latest["trigger_schema"]["store_location"]["required"] is True
