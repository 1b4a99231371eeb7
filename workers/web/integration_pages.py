"""The console's pages of one installed integration, one tab each, and their actions: Dead letter
(``status.dead_letter`` and ``replay.replay``), Settings (``manage.update_integration``, enable / disable, Check
connection, ``manage.delete_integration``), Query & access (``athena.athena_ddl``, the IAM policies). The tabs of what
was delivered (Status with the overview, Live Events, Objects) are in ``workers.web.delivery_pages``; ``page`` renders
any tab.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from workers.errors import ConfigError
from workers.events import blueprint
from workers.integrations import catalog, manage, registry, sources, status
from workers.integrations.model import Integration
from workers.pipeline import replay, tables
from workers.sink import athena, credentials
from workers.web import forms
from workers.web.deps import ID_MAX_CHARS
from workers.web.pages import ConsoleRoute, posted, redirect, render, signed_in
from workers.web.state import state

log = logging.getLogger(__name__)

TABS: tuple[tuple[str, str, str], ...] = (
    ("status", "Status", ""),
    ("live", "Live Events", "/live"),
    ("objects", "Objects", "/objects"),
    ("dead-letter", "Dead letter", "/dead-letter"),
    ("settings", "Settings", "/settings"),
    ("query", "Query & access", "/query"),
)
FLASH_LIST_MAX = 10  # batches listed in a replay's outcome (the counts are always complete)

SIGNED_IN = [Depends(signed_in)]
IntegrationId = Path(..., min_length=1, max_length=ID_MAX_CHARS)


def page(request: Request, integ: Integration, tab: str, template: str, **context: Any) -> Response:
    r = state(request).r
    try:
        source_name = sources.get(r, integ.source_id).name if integ.source_id else None
    except sources.UnknownSource:
        source_name = integ.source_id
    return render(
        request,
        template,
        nav="integrations",
        tab=tab,
        tabs=TABS,
        integration=manage.view(integ),
        blueprint_rules=blueprint.describe(integ.blueprint),
        source_name=source_name,
        **context,
    )


def _settings_page(
    request: Request,
    integ: Integration,
    form: dict[str, str] | None = None,
    *,
    error: ConfigError | None = None,
    failure: Any = None,
    check: dict[str, Any] | None = None,
) -> Response:
    entry = catalog.find(catalog.INTEGRATION_TYPE)
    assert entry is not None
    errors = forms.errors_by_field(error)
    form = {**(form if form is not None else {"name": integ.name}), "variant": integ.variant}
    name = forms.name_field(form, errors)
    fields = forms.config_fields(entry, form, errors, current=integ.config.public_dict())
    bp_fields = forms.blueprint_fields(form, errors, current=integ.blueprint)
    shown = {f.name for f in fields} | {"name"} | forms.blueprint_shown(bp_fields, errors)
    return page(
        request,
        integ,
        "settings",
        "integration_settings.html",
        check=check,
        name_field=name,
        fields=fields,
        blueprint_fields=bp_fields,
        form=form,
        errors=errors,
        other_errors=[(k, v) for k, v in errors.items() if k not in shown],
        failure=failure,
        skip_check_name=forms.SKIP_CHECK,
        preview=forms.key_preview(fields, integ.variant),
    )


def _delete_page(request: Request, integ: Integration, *, refused: str | None = None, flush: bool = False) -> Response:
    return page(
        request,
        integ,
        "settings",
        "integration_delete.html",
        counts=manage.counts(state(request).r, integ.id),
        refused=refused,
        flush=flush,
    )


def _replay_outcome(summary: dict[str, Any]) -> dict[str, Any]:
    failing = summary["still_failing"]
    return {
        "kind": "replay",
        "delivered": len(summary["delivered"]),
        "delivered_ids": summary["delivered"][:FLASH_LIST_MAX],
        "already": len(summary["already_delivered"]),
        "failing": failing[:FLASH_LIST_MAX],
        "failing_count": len(failing),
    }


router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

BASE = "/integrations/{integration_id}"


@router.get(BASE + "/dead-letter", dependencies=SIGNED_IN)
def dead_letter_tab(request: Request, integration_id: str = IntegrationId) -> Response:
    r = state(request).r
    integ = registry.get(r, integration_id)
    return page(request, integ, "dead-letter", "integration_dead_letter.html", batches=status.dead_letter(r, integ.id))


@router.post(BASE + "/dead-letter/replay")
def replay_held(
    request: Request, integration_id: str = IntegrationId, form: dict[str, str] = Depends(posted)
) -> Response:
    st = state(request)
    registry.get(st.r, integration_id)
    target = f"/integrations/{integration_id}/dead-letter"
    try:
        report = replay.replay(st.r, integration_id, settings=st.settings, batch_id=form.get("batch_id") or None)
    except registry.UnknownIntegration:
        raise
    except LookupError as exc:
        return redirect(request, target, {"kind": "error", "text": str(exc)})
    return redirect(request, target, _replay_outcome(report.summary()))


@router.get(BASE + "/settings", dependencies=SIGNED_IN)
def settings_tab(request: Request, integration_id: str = IntegrationId) -> Response:
    return _settings_page(request, registry.get(state(request).r, integration_id))


@router.post(BASE + "/settings")
def save_settings(
    request: Request, integration_id: str = IntegrationId, form: dict[str, str] = Depends(posted)
) -> Response:
    st = state(request)
    integ = registry.get(st.r, integration_id)
    entry = catalog.find(catalog.INTEGRATION_TYPE)
    assert entry is not None
    form = {**form, "variant": integ.variant}  # the fields of a variant belong to it (fixed at install)
    try:
        manage.update_integration(st.r, integ.id, forms.update_body(entry, form), settings=st.settings)
    except ConfigError as exc:
        return _settings_page(request, integ, form, error=exc)
    except manage.BucketCheckFailed as exc:
        return _settings_page(request, integ, form, failure=exc.failure)
    log.info("updated integration=%s (console)", integ.id)
    return redirect(request, f"/integrations/{integ.id}/settings", {"kind": "ok", "text": "Settings saved."})


def set_enabled(request: Request, integration_id: str, enabled: bool) -> Response:
    integ = registry.set_enabled(state(request).r, integration_id, enabled)
    text = f"{integ.name} is {'enabled: it receives events' if enabled else 'disabled: it receives no events'}."
    return redirect(request, f"/integrations/{integ.id}/settings", {"kind": "ok", "text": text})


@router.post(BASE + "/enable")
def enable(request: Request, integration_id: str = IntegrationId, _: dict[str, str] = Depends(posted)) -> Response:
    return set_enabled(request, integration_id, True)


@router.post(BASE + "/disable")
def disable(request: Request, integration_id: str = IntegrationId, _: dict[str, str] = Depends(posted)) -> Response:
    return set_enabled(request, integration_id, False)


@router.get(BASE + "/delete", dependencies=SIGNED_IN)
def confirm_delete(request: Request, integration_id: str = IntegrationId) -> Response:
    return _delete_page(request, registry.get(state(request).r, integration_id))


@router.post(BASE + "/delete")
def delete(request: Request, integration_id: str = IntegrationId, form: dict[str, str] = Depends(posted)) -> Response:
    st = state(request)
    integ = registry.get(st.r, integration_id)
    flush = form.get("flush") == "1"
    try:
        manage.delete_integration(st.r, st.broker, integ.id, settings=st.settings, flush=flush)
    except manage.NotEmpty as exc:
        return _delete_page(request, integ, refused=exc.message, flush=flush)
    log.info("deleted integration=%s (console)", integ.id)
    return redirect(request, "/integrations", {"kind": "ok", "text": f"{integ.name} was deleted."})


@router.get(BASE + "/query", dependencies=SIGNED_IN)
def query_tab(request: Request, integration_id: str = IntegrationId) -> Response:
    st = state(request)
    integ = registry.get(st.r, integration_id)
    fields = integ.config.partition_by
    ddl = ddl_error = table = None
    if integ.variant == "iceberg":
        table = tables.table_view(st.r, integ.id, settings=st.settings)
    else:
        try:
            ddl = athena.athena_ddl(integ.id, integ.config, variant=integ.variant, fields=fields)
        except ValueError as exc:
            ddl_error = str(exc)
    policies = manage.access_policies(integ, settings=st.settings)
    policy = json.dumps(policies["permissions_policy"], indent=2)
    trust = json.dumps(policies["trust_policy"], indent=2) if "trust_policy" in policies else None
    return page(
        request,
        integ,
        "query",
        "integration_query.html",
        ddl=ddl,
        ddl_error=ddl_error,
        table=table,
        partitions=[f.column for f in fields] + list(athena.partition_names(integ.config.date_layout)),
        policy=policy,
        trust=trust,
        principal_unknown=trust is not None and credentials.FLEET_PRINCIPAL in trust,
    )


@router.post(BASE + "/check")
def check_connection(
    request: Request, integration_id: str = IntegrationId, _: dict[str, str] = Depends(posted)
) -> Response:
    """Check connection (Settings tab): every step an upload takes, shown on the settings page."""
    st = state(request)
    integ = registry.get(st.r, integration_id)
    report = manage.check_connection(st.r, integ.id, settings=st.settings)
    log.info("checked connection integration=%s ok=%s (console)", integ.id, report["ok"])
    return _settings_page(request, integ, check=report)
