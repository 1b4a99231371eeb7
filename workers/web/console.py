"""The web console at ``/``: sign-in, Integrations (Installed and the Integration Library, the install form),
Sources, Fleet and the API reference. The pages of one integration are in ``workers.web.integration_pages``.

Pages are views over the plain functions the admin API calls (``manage``, ``catalog``, ``registry``, ``status``,
``sources``, ``fleet``): no rule is written twice. Every route needs a signed-in session (``pages.signed_in``) and every
state-changing one its CSRF token (``pages.posted``); without ``SIGNAL_ADMIN_TOKEN`` every page says the console is
disabled. A form with errors is shown again with status 200 and its messages next to the fields (a 4xx status would
be reported as an error in the browser's console).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from workers.errors import ConfigError
from workers.events import blueprint
from workers.integrations import catalog, manage, registry, sources, status
from workers.integrations import overview as delivery
from workers.integrations.model import Integration
from workers.observe import fleet
from workers.web import delivery_pages, forms, reference, session
from workers.web.deps import admin_enabled, admin_token_matches, client_address
from workers.web.pages import (
    ConsoleDisabled,
    ConsoleRoute,
    Forbidden,
    PageNotFound,
    fragment,
    local_path,
    posted,
    read_form,
    redirect,
    render,
    signed_in,
)
from workers.web.state import state
from workers.websites import snippet

log = logging.getLogger(__name__)

SIGNED_IN = [Depends(signed_in)]


router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


# -- sign-in ----------------------------------------------------------------------------------------------------


@router.get("/", dependencies=SIGNED_IN)
def home() -> Response:
    return RedirectResponse("/integrations", status_code=303)


def _locked_page(request: Request, target: str, wait_s: int) -> Response:
    """The sign-in page of an address locked out by wrong admin tokens: 429, with ``Retry-After``."""
    response = render(
        request,
        "signin.html",
        status_code=429,
        next=target,
        signed_out=False,
        error=f"Too many wrong admin tokens from this address. Try again in {wait_s} s.",
    )
    response.headers["Retry-After"] = str(wait_s)
    return response


@router.get("/signin")
def signin_page(request: Request, next: str | None = Query(None, max_length=2000)) -> Response:  # noqa: A002
    st = state(request)
    if not admin_enabled(st.settings):
        raise ConsoleDisabled()
    current = session.load(st.settings, st.r, request.cookies.get(session.COOKIE), int(time.time()))
    if current is not None:
        return RedirectResponse(local_path(next), status_code=303)
    wait_s = session.locked_out_s(st.r, st.settings, client_address(request))
    if wait_s:
        return _locked_page(request, local_path(next), wait_s)
    signed_out = request.query_params.get("signed_out") == "1"
    return render(request, "signin.html", next=local_path(next), error=None, signed_out=signed_out)


@router.post("/signin")
async def signin(request: Request) -> Response:
    st = state(request)
    if not admin_enabled(st.settings):
        raise ConsoleDisabled()
    if not session.same_origin(request):
        raise Forbidden("a sign-in posted from another site was refused")
    form = await read_form(request)
    target = local_path(form.get("next"))
    client = client_address(request)
    wait_s = await asyncio.to_thread(session.locked_out_s, st.r, st.settings, client)
    if wait_s:
        return _locked_page(request, target, wait_s)
    if not admin_token_matches(st.settings, form.get("token", "")):
        await asyncio.to_thread(session.record_failure, st.r, st.settings, client)
        log.warning("failed console sign-in from %s", client)
        return render(
            request,
            "signin.html",
            next=target,
            signed_out=False,
            error="That is not the admin token (SIGNAL_ADMIN_TOKEN).",
        )
    await asyncio.to_thread(session.clear_failures, st.r, client)
    response = RedirectResponse(target, status_code=303)
    session.set_session(response, request, st.settings, session.issue(int(time.time())))
    return response


@router.post("/signout")
def signout(request: Request, _: dict[str, str] = Depends(posted)) -> Response:
    st = state(request)
    session.revoke(st.r, st.settings, request.state.session, int(time.time()))
    response = RedirectResponse("/signin?signed_out=1", status_code=303)
    session.clear_cookie(response, request, session.COOKIE)
    return response


# -- integrations: installed, library, install ----------------------------------------------------------------------


def installed_rows(r: Any) -> list[dict[str, Any]]:
    names = {s.id: s.name for s in sources.list_all(r)}
    rows = []
    for integ in registry.list_all(r):
        st = status.integration_status(r, integ.id)
        rows.append(
            {
                "integration": manage.view(integ),
                "status": st,
                "error": status.current_error(st),
                "source_name": names.get(integ.source_id or "", integ.source_id),
            }
        )
    return rows


def _entry(integration_type: str) -> dict[str, Any]:
    entry = catalog.find(integration_type)
    if entry is None:
        raise PageNotFound(f"the Integration Library has no {integration_type!r}")
    return entry


def _install_page(
    request: Request,
    entry: dict[str, Any],
    form: dict[str, str],
    *,
    error: ConfigError | None = None,
    failure: Any = None,
) -> Response:
    errors = forms.errors_by_field(error)
    head = forms.head_fields(entry, sources.list_all(state(request).r), form, errors)
    fields = forms.config_fields(entry, form, errors)
    bp_fields = forms.blueprint_fields(form, errors)
    shown = {f.name for f in head + fields} | forms.blueprint_shown(bp_fields, errors)
    return render(
        request,
        "install.html",
        nav="integrations",
        entry=entry,
        head_fields=head,
        fields=fields,
        blueprint_fields=bp_fields,
        form=form,
        errors=errors,
        other_errors=[(k, v) for k, v in errors.items() if k not in shown],
        failure=failure,
        retype=[f.label.lower() for f in fields if f.kind == "password" and form.get(f.name, "").strip()],
        skip_check_name=forms.SKIP_CHECK,
        preview=forms.key_preview(fields, form.get("variant") or entry["variants"][0]["id"]),
    )


@router.get("/integrations/key-preview", dependencies=SIGNED_IN)
def key_preview(
    prefix: str = "", partition_fields: str = "", date_layout: str = "", variant: str = "default"
) -> dict[str, Any]:
    """The example key of the install and settings forms, for what is typed now (their script asks as it changes)."""
    key, problem = catalog.example_key(
        prefix=prefix,
        partition_fields=partition_fields,
        date_layout=date_layout,
        variant=variant,
    )
    return {"key": key, "error": problem}


@router.get("/integrations", dependencies=SIGNED_IN)
def installed(request: Request) -> Response:
    return render(request, "installed.html", nav="integrations", tab="installed", rows=installed_rows(state(request).r))


@router.get("/integrations/library", dependencies=SIGNED_IN)
def library(
    request: Request, category: str = Query("", max_length=100), q: str = Query("", max_length=200)
) -> Response:
    return render(
        request,
        "library.html",
        nav="integrations",
        tab="library",
        entries=catalog.search(q, category or None),
        categories=catalog.categories(),
        category=category,
        q=q,
    )


@router.get("/integrations/library/{integration_type}/install", dependencies=SIGNED_IN)
def install_form(request: Request, integration_type: str) -> Response:
    entry = _entry(integration_type)
    return _install_page(request, entry, {"name": entry["name"]})


@router.post("/integrations/library/{integration_type}/install")
def install(request: Request, integration_type: str, form: dict[str, str] = Depends(posted)) -> Response:
    entry = _entry(integration_type)
    st = state(request)
    try:
        integ = manage.install_integration(st.r, forms.install_body(entry, form), settings=st.settings)
    except ConfigError as exc:
        return _install_page(request, entry, form, error=exc)
    except manage.BucketCheckFailed as exc:
        return _install_page(request, entry, form, failure=exc.failure)
    log.info("installed integration=%s source=%s bucket=%s (console)", integ.id, integ.source_id, integ.config.bucket)
    return redirect(
        request,
        f"/integrations/{integ.id}",
        {
            "kind": "ok",
            "text": f"{integ.name} installed with the default blueprint."
            if integ.blueprint.is_default
            else f"{integ.name} installed. Blueprint: " + " ".join(blueprint.describe(integ.blueprint)),
        },
    )


# -- sources ------------------------------------------------------------------------------------------------------


def _integrations_of(r: Any, source_id: str) -> list[Integration]:
    found = []
    for integration_id in sources.integration_ids(r, source_id):
        try:
            found.append(registry.get(r, integration_id))
        except registry.UnknownIntegration:  # deleted meanwhile
            continue
    return found


def _sources_page(request: Request, *, error: ConfigError | None = None, name: str = "") -> Response:
    st = state(request)
    r, url = st.r, st.settings.collection_url
    listed = [
        {
            "source": s,
            "integrations": _integrations_of(r, s.id),
            "view": sources.view(r, s, st.settings),
            "snippets": snippet.for_source(s.id, s.write_key, api_url=url),
        }
        for s in sources.list_all(r)
    ]
    return render(
        request,
        "sources.html",
        nav="sources",
        listed=listed,
        collection_url=url,
        errors=forms.errors_by_field(error),
        name=name,
    )


@router.get("/sources", dependencies=SIGNED_IN)
def sources_page(request: Request) -> Response:
    return _sources_page(request)


@router.post("/sources")
def create_source(request: Request, form: dict[str, str] = Depends(posted)) -> Response:
    try:
        source = sources.create(state(request).r, form.get("name", ""))
    except ConfigError as exc:
        return _sources_page(request, error=exc, name=form.get("name", ""))
    log.info("created source=%s (console)", source.id)
    return redirect(
        request,
        f"/sources#source-{source.id}",
        {"kind": "ok", "text": f"Source {source.name} created: copy its write key below."},
    )


# -- fleet --------------------------------------------------------------------------------------------------------


def overview(request: Request) -> dict[str, Any]:
    st = state(request)
    return fleet.overview(st.r, st.broker.app, st.settings)


@router.get("/fleet", dependencies=SIGNED_IN)
def fleet_page(request: Request, hours: int = Query(24, ge=1, le=delivery.MAX_HOURS)) -> Response:
    st = state(request)
    now = overview(request)
    totals = now["totals"]
    answer = delivery.fleet_overview(st.r, hours=hours, buffered=totals["buffered_events"], held=totals["held_events"])
    return render(
        request,
        "fleet.html",
        nav="fleet",
        fleet=now,
        **delivery_pages.overview_context(answer, hours, request.url.path),
    )


@router.get("/fleet/panel", dependencies=SIGNED_IN)
def fleet_panel(request: Request) -> Response:
    return fragment(request, "_fleet_panel.html", fleet=overview(request))


# -- the API reference ----------------------------------------------------------------------------------------------


@router.get("/api", dependencies=SIGNED_IN)
def api_reference(request: Request) -> Response:
    """Every route of the API with its parameters and body fields, from the app's own OpenAPI document."""
    return render(request, "api_reference.html", nav="api", groups=reference.groups(request.app.openapi()))
