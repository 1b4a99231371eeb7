"""The console's tabs of what an integration delivered: Status with the delivery overview and its charts, Live Events
(filters, the pinned test event, find an event, the event as stored) and Objects (the ledger).

Each calls the plain functions the admin API calls (``status``, ``overview``, ``find``, ``manage.run_test_event``), so
the console shows the API's numbers.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from workers.integrations import find, manage, overview, registry, status
from workers.web import charts
from workers.web.integration_pages import BASE, SIGNED_IN, IntegrationId, page
from workers.web.pages import ConsoleRoute, fragment, posted, redirect
from workers.web.state import state

LIVE_LIMIT = 50
OBJECTS_PAGE = 50
FINAL_STATES = ("delivered", "failed", "filtered")
Hours = Query(24, ge=1, le=overview.MAX_HOURS)

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)


def overview_context(answer: dict[str, Any], hours: int, path: str) -> dict[str, Any]:
    """What ``_overview.html`` draws: the API's answer, its bars and its latency lines.

    ``path`` is the page's own path: the window links name it in full, as every link of the console does.
    """
    return {
        "overview": answer,
        "overview_hours": hours,
        "overview_path": path,
        "bars": charts.bars(answer["hours"]),
        "lines": charts.latency(answer["hours"]),
    }


def _status(r: Any, integration_id: str) -> dict[str, Any]:
    st = status.integration_status(r, integration_id)
    return {"status": st, "error": status.current_error(st)}


@router.get(BASE, dependencies=SIGNED_IN)
def status_tab(request: Request, integration_id: str = IntegrationId, hours: int = Hours) -> Response:
    r = state(request).r
    integ = registry.get(r, integration_id)
    answer = overview.integration_overview(r, integ.id, hours=hours)
    return page(
        request,
        integ,
        "status",
        "integration_status.html",
        **_status(r, integ.id),
        **overview_context(answer, hours, request.url.path),
    )


@router.get(BASE + "/status/panel", dependencies=SIGNED_IN)
def status_panel(request: Request, integration_id: str = IntegrationId) -> Response:
    r = state(request).r
    return fragment(request, "_status_panel.html", **_status(r, registry.get(r, integration_id).id))


# -- Live Events ------------------------------------------------------------------------------------------------------


def _filters(request: Request) -> dict[str, str | None]:
    q = request.query_params
    return {
        "state": q.get("state") if q.get("state") in status.LIVE_STATES else None,
        "type": (q.get("type") or "")[:20] or None,
        "event": (q.get("event") or "")[:200] or None,
    }


def _live(r: Any, integration_id: str, filters: dict[str, str | None]) -> dict[str, Any]:
    events = status.live_events(
        r, integration_id, limit=LIVE_LIMIT, state=filters["state"], type_=filters["type"], event=filters["event"]
    )
    pinned = status.pinned_event(r, integration_id)
    if pinned is not None and pinned["state"] in FINAL_STATES:
        pinned = None  # settled: it stays in the list like any event, no longer on top
    if pinned is not None:
        events = [e for e in events if e["event_id"] != pinned["event_id"]]
    query = urlencode({k: v for k, v in filters.items() if v})
    return {"events": events, "pinned": pinned, "filters": filters, "query": query, "integration_id": integration_id}


@router.get(BASE + "/live", dependencies=SIGNED_IN)
def live_tab(request: Request, integration_id: str = IntegrationId) -> Response:
    r = state(request).r
    integ = registry.get(r, integration_id)
    context = _live(r, integ.id, _filters(request))
    return page(request, integ, "live", "integration_live.html", states=status.LIVE_STATES, **context)


@router.get(BASE + "/live/rows", dependencies=SIGNED_IN)
def live_rows(request: Request, integration_id: str = IntegrationId) -> Response:
    r = state(request).r
    return fragment(request, "_live_rows.html", **_live(r, registry.get(r, integration_id).id, _filters(request)))


def _pretty(line: str | None) -> str | None:
    """An event line as stored, indented for reading (the template escapes it)."""
    if not line:
        return None
    try:
        return json.dumps(json.loads(line), indent=2, ensure_ascii=False, sort_keys=False)
    except ValueError:
        return line


@router.get(BASE + "/live/find", dependencies=SIGNED_IN)
def find_event(
    request: Request,
    integration_id: str = IntegrationId,
    event_id: str = Query("", max_length=200),
    at: str = Query("", max_length=40),
) -> Response:
    """Find an event (the search box of Live Events, and each row's link): where it is, and the event as stored."""
    st = state(request)
    integ = registry.get(st.r, integration_id)
    context: dict[str, Any] = {"event_id": event_id.strip(), "at": at, "found": None, "not_found": None, "error": None}
    if context["event_id"]:
        try:
            when = overview.parse_time(at.strip() or None, "at")
            found = find.find_event(st.r, integ.id, context["event_id"], at=when, settings=st.settings)
            context["found"] = found | {"pretty": _pretty(found.get("line"))}
        except ValueError as exc:
            context["error"] = str(exc)
        except find.EventNotFound as exc:
            context["not_found"] = exc.searched
    return page(request, integ, "live", "integration_find.html", **context)


@router.post(BASE + "/test-event")
def send_test_event(
    request: Request, integration_id: str = IntegrationId, _: dict[str, str] = Depends(posted)
) -> Response:
    st = state(request)
    code, body = manage.run_test_event(st.r, st.broker, integration_id, settings=st.settings)
    return redirect(request, f"/integrations/{integration_id}/live", _test_outcome(code, body))


def _test_outcome(code: int, body: dict[str, Any]) -> dict[str, Any]:
    if code == 200:
        return {
            "kind": "test",
            "ok": True,
            "event_id": body["event_id"],
            "bucket": body["bucket"],
            "object_key": body.get("object_key"),
            "elapsed_ms": body.get("elapsed_ms"),
        }
    if body.get("state") == "filtered":
        return {
            "kind": "test",
            "ok": False,
            "filtered": True,
            "event_id": body["event_id"],
            "code": body["reason"],
            "message": body["message"],
            "hint": body["hint"],
        }
    return {
        "kind": "test",
        "ok": False,
        "event_id": body.get("event_id"),
        "code": body.get("code") or body["error"],
        "message": body.get("message"),
        "hint": body.get("hint"),
    }


# -- Objects ----------------------------------------------------------------------------------------------------------


@router.get(BASE + "/objects", dependencies=SIGNED_IN)
def objects_tab(
    request: Request,
    integration_id: str = IntegrationId,
    since: str = Query("", max_length=40),
    until: str = Query("", max_length=40),
    cursor: str | None = Query(None, max_length=20),
) -> Response:
    """The object ledger, newest first, a page at a time, with each object's ``aws s3 cp`` line to copy."""
    r = state(request).r
    integ = registry.get(r, integration_id)
    error = None
    try:
        answer = overview.objects(
            r,
            integ.id,
            since=overview.parse_time(since or None, "since"),
            until=overview.parse_time(until or None, "until"),
            cursor=cursor,
            limit=OBJECTS_PAGE,
        )
    except ValueError as exc:
        error = str(exc)
        answer = overview.objects(r, integ.id, limit=OBJECTS_PAGE)
    page_totals = {
        "events": sum(o["events"] for o in answer["objects"]),
        "bytes": sum(o["bytes"] for o in answer["objects"]),
    }
    return page(
        request,
        integ,
        "objects",
        "integration_objects.html",
        ledger=answer,
        since=since,
        until=until,
        error=error,
        page_totals=page_totals,
    )
