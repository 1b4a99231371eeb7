"""Who may use the console, over HTTP: sign-in with the admin token into a signed cookie, sessions that end, CSRF on
every change, throttled guessing, the disabled console, and the security headers of every response.

The console runs in this process (uvicorn in a thread) against the fleet's redis-server and moto.
"""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import httpx
from pydantic import SecretStr

from tests.integration.conftest import CONSOLE_TOKEN
from tests.support.api import serve_in_thread
from tests.support.console import ConsoleClient, parse
from workers.integrations import registry, sources
from workers.store import keys
from workers.web import console as console_module
from workers.web import delivery_pages, integration_pages, session
from workers.web.app import create_app
from workers.web.deps import CONSOLE_DISABLED

SEED_CONFIG = {
    "bucket": "datafly-events-production",
    "region": "us-east-1",
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}


def install(fleet: Any, name: str = "Amazon S3") -> str:
    from workers.integrations import manage

    return manage.install_integration(
        fleet.r, {"name": name, "config": dict(SEED_CONFIG), "verify": False}, settings=_settings()
    ).id


def _settings() -> Any:
    from workers.settings import get_settings

    return get_settings()


def console_routes(integration_id: str) -> list[tuple[str, str]]:
    """(method, path) of every route of the console, path parameters filled in."""
    out = []
    for route in [*console_module.router.routes, *integration_pages.router.routes, *delivery_pages.router.routes]:
        path = route.path.replace("{integration_id}", integration_id).replace("{integration_type}", "amazon_s3")
        for method in sorted(route.methods - {"HEAD"}):
            out.append((method, path))
    return out


# -- sign-in and the session cookie ---------------------------------------------------------------------------------


def test_every_page_and_action_needs_a_session_and_changes_nothing_without_one(fleet, console_url):
    iid = install(fleet)
    anon = httpx.Client(base_url=console_url, follow_redirects=False)
    routes = console_routes(iid)
    assert len(routes) >= 20
    for method, path in routes:
        if path == "/signin":
            continue
        response = anon.request(method, path, data={"name": "x", "csrf_token": "x"}, headers={"Origin": console_url})
        assert response.status_code == 303, (method, path, response.status_code)
        assert response.headers["location"].startswith("/signin?next="), (method, path)
        refreshed = anon.request(method, path, headers={"X-Console-Fragment": "1"})
        assert refreshed.status_code == 401, (method, path)
    assert registry.get(fleet.r, iid).enabled is True
    assert [s.id for s in sources.list_all(fleet.r)] == ["default"]
    # the sign-in page sends the person back where they were going
    assert anon.get("/fleet").headers["location"] == "/signin?next=/fleet"
    page = parse(anon.get("/signin?next=/fleet").text)
    assert page.find("input", name="next").get("value") == "/fleet"
    assert anon.get("/signin?next=//evil.example/x").status_code == 200
    assert (
        parse(anon.get("/signin?next=//evil.example/x").text).find("input", name="next").get("value") == "/integrations"
    )


def test_signing_in_sets_a_strict_httponly_cookie_that_holds_no_token(console_url, console_settings):
    client = ConsoleClient(console_url)
    wrong = client.sign_in("not-the-token")
    assert wrong.status_code == 200 and "set-cookie" not in wrong.headers
    assert "That is not the admin token" in parse(wrong.text).by_id("signin-error").text
    response = client.sign_in(CONSOLE_TOKEN)
    assert response.status_code == 303 and response.headers["location"] == "/integrations"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{session.COOKIE}=")
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", f"max-age={console_settings.console_session_ttl_s}"} <= attributes
    assert "secure" not in attributes  # plain http here; https gets Secure (tests/unit/test_session.py)
    value = client.http.cookies[session.COOKIE]
    payload = base64.urlsafe_b64decode(value.split(".")[0] + "==")
    assert CONSOLE_TOKEN not in value and CONSOLE_TOKEN.encode() not in payload
    assert set(session.decode(session.signing_key(console_settings), value)) == {"v", "signed_in", "iat", "csrf"}
    assert client.page("/integrations").find("h1").text == "Integrations"


def test_sessions_end_at_sign_out_at_expiry_on_tampering_and_when_the_admin_token_changes(
    fleet, console, console_url, console_settings
):
    stolen = console.http.cookies[session.COOKIE]
    body, signature = stolen.split(".")

    def signed_in_with(value: str, url: str = console_url) -> bool:
        with httpx.Client(base_url=url, cookies={session.COOKIE: value}) as other:
            return other.get("/fleet").status_code == 200

    assert signed_in_with(stolen)
    assert not signed_in_with(body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + signature)
    key = session.signing_key(console_settings)
    now = int(time.time())
    expired = session.encode(
        key, {"v": 1, "signed_in": True, "iat": now - console_settings.console_session_ttl_s - 1, "csrf": "x" * 20}
    )
    fresh = session.encode(key, {"v": 1, "signed_in": True, "iat": now - 60, "csrf": "y" * 20})
    assert not signed_in_with(expired) and signed_in_with(fresh)

    # another API process with another admin token: every cookie signed before is worthless there
    other_settings = console_settings.model_copy(update={"admin_token": SecretStr("new-token")})
    with serve_in_thread(create_app(other_settings)) as other_url:
        assert not signed_in_with(stolen, other_url)

    response = console.post("/signout")
    assert response.status_code == 303 and response.headers["location"] == "/signin?signed_out=1"
    assert (
        f"{session.COOKIE}=" in response.headers["set-cookie"] and "max-age=0" in response.headers["set-cookie"].lower()
    )
    assert not signed_in_with(stolen)  # revoked, not only forgotten by this browser
    assert "You are signed out" in parse(console.get("/signin?signed_out=1").text).text


def test_failed_sign_ins_are_throttled_across_api_processes(fleet, console_settings):
    settings = console_settings.model_copy(update={"console_signin_max_failures": 3, "console_signin_window_s": 60})
    with serve_in_thread(create_app(settings)) as one, serve_in_thread(create_app(settings)) as two:
        a, b = ConsoleClient(one), ConsoleClient(two)
        for client in (a, b, a):
            assert "That is not the admin token" in client.sign_in("guess").text
        for client in (a, b):  # the count lives in Redis: both processes refuse, even the right token
            refused = client.sign_in(CONSOLE_TOKEN)
            assert refused.status_code == 429 and "set-cookie" not in refused.headers
            wait_s = int(refused.headers["retry-after"])
            assert 0 < wait_s <= 60
            message = parse(refused.text).by_id("signin-error").text
            assert re.fullmatch(r"Too many wrong admin tokens from this address\. Try again in \d+ s\.", message)
            shown = client.get("/signin")  # the page says so before anyone types again
            assert shown.status_code == 429 and "Try again in" in parse(shown.text).by_id("signin-error").text
            # the admin API refuses the address too: the sign-in's lock cannot be sidestepped there
            api = httpx.get(f"{one}/v1/admin/sources", headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"})
            assert api.status_code == 429 and api.json()["error"] == "too_many_failures"
        key = keys.signin_failures("127.0.0.1")
        assert 0 < fleet.r.ttl(key) <= 60 and int(fleet.r.get(key)) == 3
        fleet.r.delete(key)  # the window ends
        assert a.sign_in(CONSOLE_TOKEN).status_code == 303
        assert fleet.r.get(key) is None


def test_without_an_admin_token_the_console_says_it_is_disabled_like_the_admin_api(fleet, console_settings):
    settings = console_settings.model_copy(update={"admin_token": None})
    with serve_in_thread(create_app(settings)) as url, httpx.Client(base_url=url) as anon:
        for method, path in (
            ("GET", "/"),
            ("GET", "/signin"),
            ("GET", "/integrations"),
            ("GET", "/fleet"),
            ("POST", "/signin"),
        ):
            response = anon.request(method, path, data={"token": ""}, headers={"Origin": url})
            assert response.status_code == 503, (method, path)
            assert parse(response.text).by_id("message").text == CONSOLE_DISABLED
            assert "SIGNAL_ADMIN_TOKEN" in CONSOLE_DISABLED
        api = anon.get("/v1/admin/integrations")
        assert api.status_code == 503 and "SIGNAL_ADMIN_TOKEN" in api.json()["message"]


# -- CSRF -----------------------------------------------------------------------------------------------------------


def test_a_change_needs_the_csrf_token_and_the_consoles_own_origin(fleet, console, console_url):
    iid = install(fleet)
    refusals = [
        console.post(f"/integrations/{iid}/disable", csrf=False),
        console.post(f"/integrations/{iid}/disable", {"csrf_token": "forged"}),
        console.post(f"/integrations/{iid}/disable", headers={"Origin": "http://evil.example"}),
        console.post(f"/integrations/{iid}/disable", headers={"Sec-Fetch-Site": "cross-site"}),
        console.post(f"/integrations/{iid}/disable", headers={"Sec-Fetch-Site": "same-site"}),
        console.http.post(f"/integrations/{iid}/disable", json={"csrf_token": console.csrf()}),
    ]
    for response in refusals:
        assert response.status_code == 403
        assert "nothing was changed" in parse(response.text).by_id("message").text or "forms only" in response.text
    assert registry.get(fleet.r, iid).enabled is True
    assert console.post(f"/integrations/{iid}/disable").status_code == 303
    assert registry.get(fleet.r, iid).enabled is False


def test_every_action_refuses_a_post_without_the_csrf_token(fleet, console):
    iid = install(fleet)
    before = sorted(fleet.r.keys("*"))
    for method, path in console_routes(iid):
        if method != "POST" or path == "/signin":
            continue
        response = console.post(path, {"name": "Changed", "flush": "1", "config.bucket": "other-bucket"}, csrf=False)
        assert response.status_code == 403, path
    assert sorted(fleet.r.keys("*")) == before
    assert registry.get(fleet.r, iid).name == "Amazon S3"


# -- what every response carries ------------------------------------------------------------------------------------


def assert_security_headers(response: httpx.Response) -> None:
    csp = response.headers.get("content-security-policy", "")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives["script-src"] == "'self'", csp
    assert directives["frame-ancestors"] == "'none'" and directives["default-src"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_every_console_response_carries_the_security_headers(fleet, console, console_url):
    iid = install(fleet)
    anon = httpx.Client(base_url=console_url)
    responses = [
        anon.get("/signin"),
        anon.get("/integrations"),
        anon.get("/static/console.js"),
        anon.get("/static/console.css"),
        console.get("/integrations"),
        console.get(f"/integrations/{iid}"),
        console.get(f"/integrations/{iid}/live/rows"),
        console.get("/integrations/nope"),
        console.get("/integrations/library/gcs/install"),
        console.post(f"/integrations/{iid}/enable", csrf=False),
        console.get("/api"),
        console.get("/openapi.json"),
        anon.get("/openapi.json"),
    ]
    assert [r.status_code for r in responses] == [200, 303, 200, 200, 200, 200, 200, 404, 404, 403, 200, 200, 401]
    for response in responses:
        assert_security_headers(response)
    assert responses[2].headers["content-type"].startswith(("text/javascript", "application/javascript"))
    assert "is not installed" in parse(responses[7].text).by_id("message").text


def test_pages_run_no_inline_script_and_load_nothing_from_elsewhere(fleet, console, console_url):
    iid = install(fleet)
    paths = [
        "/integrations",
        "/integrations/library",
        "/integrations/library/amazon_s3/install",
        "/sources",
        "/fleet",
        "/api",
        *(f"/integrations/{iid}{tab}" for tab in ("", "/live", "/dead-letter", "/settings", "/query", "/delete")),
    ]
    for path in paths + ["/signin"]:
        page = parse(console.get(path).text if path != "/signin" else httpx.get(console_url + path).text)
        for script in page.find_all("script"):
            assert script.get("src", "").startswith("/static/") and not script.text, path
        for el in page.find_all():
            assert not [a for a in el.attrs if a.startswith("on")], (path, el.tag, el.attrs)
            assert "style" not in el.attrs, (path, el.tag)
            for attr in ("src", "href", "action"):
                value = el.get(attr)
                assert value is None or value.startswith(("/", "#")), (path, el.tag, attr, value)


# -- the API's reference ----------------------------------------------------------------------------------------------


def test_the_openapi_document_is_served_only_with_the_admin_token_or_a_session_and_never_docs_from_a_cdn(
    fleet, console, console_url, console_settings
):
    anon = httpx.Client(base_url=console_url)
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):  # FastAPI's pages load Swagger UI / ReDoc from a CDN
        assert anon.get(path).status_code == 404 and console.get(path).status_code == 404, path
    refused = anon.get("/openapi.json")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert set(refused.json()) == {"error", "message"} and refused.json()["error"] == "unauthorized"
    wrong = anon.get("/openapi.json", headers={"Authorization": "Bearer wrong"})
    with_token = anon.get("/openapi.json", headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"})
    with_session = console.get("/openapi.json")
    assert wrong.status_code == 401 and with_token.status_code == 200 and with_session.status_code == 200
    for response in (refused, wrong, with_token, with_session):
        assert_security_headers(response)
        assert response.headers["x-frame-options"] == "DENY"
    document = with_token.json()
    assert with_session.json() == document
    assert "/v1/admin/integrations/{integration_id}" in document["paths"] and "/v1/batch" in document["paths"]
    assert "/openapi.json" not in document["paths"] and "/api" not in document["paths"]
    # a cookie that is no session is not enough, and without SIGNAL_ADMIN_TOKEN the document is not served at all
    forged = httpx.get(f"{console_url}/openapi.json", cookies={session.COOKIE: "forged.value"})
    assert forged.status_code == 401
    disabled = console_settings.model_copy(update={"admin_token": None})
    with serve_in_thread(create_app(disabled)) as url:
        assert httpx.get(f"{url}/openapi.json").status_code == 503
        assert httpx.get(f"{url}/docs").status_code == 404


def test_the_api_page_shows_every_route_with_its_parameters_and_body_fields(fleet, console, console_url):
    anon = httpx.Client(base_url=console_url, follow_redirects=False)
    assert anon.get("/api").headers["location"] == "/signin?next=/api"
    page = console.page("/api")
    assert page.find("h1").text == "API reference"
    assert page.find("a", href="/api").get("aria-current") == "page"  # in the sidebar
    document = console.get("/openapi.json").json()
    operations = [(m.upper(), p, op) for p, item in document["paths"].items() for m, op in item.items()]
    admin = [o for o in operations if o[1].startswith("/v1/admin") or o[1] == "/metrics"]
    assert len(admin) >= 19
    for method, path, op in operations:
        section = next(
            (s for s in page.find_all("section", class_="operation") if s.find("h3").text == f"{method} {path}"), None
        )
        assert section is not None, (method, path)
        assert section.find("p", class_="summary").text == op["summary"]
        assert page.find("a", href="#" + section.get("id")), (method, path)  # in the table of contents
        shown = [td.text for td in section.find_all("td") if td.get("data-label") in ("Name", "Field")]
        assert shown[: len(op.get("parameters", []))] == [p["name"] for p in op.get("parameters", [])], path
        if "requestBody" in op:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert set(schema.get("properties", {})) <= set(shown), path
    install = page.by_id("op-post-v1-admin-integration-catalog-integration-type-install")
    rows = {
        cells[0]: cells[1:]
        for cells in ([td.text for td in tr.find_all("td")] for tr in install.find_all("tr"))
        if cells
    }
    assert rows["integration_type"][:3] == ["path", "string", "yes"]
    assert rows["name"][:2] == ["string", "yes"] and rows["config"][:2] == ["object", "yes"]
    assert rows["config.bucket"][:2] == ["string", "yes"] and "S3 bucket" in rows["config.bucket"][2]
    assert rows["config.secret_access_key"][0] == "string or null" and rows["verify"][0] == "boolean"
    regions = document["paths"]["/v1/admin/integration-catalog/{integration_type}/install"]["post"]["requestBody"]
    regions = regions["content"]["application/json"]["schema"]["properties"]["config"]["properties"]["region"]["enum"]
    assert f"({len(regions)} values)" in rows["config.region"][2]
    assert "One of: deny, allow" in rows["blueprint.consent.missing"][2]
    delete = page.by_id("op-delete-v1-admin-integrations-integration-id")
    assert "at most 300" in delete.text and "default 30" in delete.text
    batch = page.by_id("op-post-v1-batch")
    assert "batch[].event" in batch.text and "A source's write key" in batch.text
    assert "Collect a batch of calls" in batch.text
