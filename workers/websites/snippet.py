"""The snippet a website pastes into its pages: analytics.js (analytics-next) or RudderStack JS v3, sending one
source's events to this collection API.

A snippet loads the SDK file from the site's own copy (``sdk_base_url``, laid out by ``signal-s3 sdk-files DIR``,
see ``workers.websites.sdk``) and configures the SDK so that it needs nothing else from Segment's or RudderStack's CDNs:

- analytics-next: ``AnalyticsBrowser.load`` gets its source settings inline (``cdnSettings``, so nothing is fetched
  from cdn.segment.com), ``Segment.io``'s ``apiHost`` / ``protocol`` point at this API (its ``/v1/t``, ``/v1/p``, ...
  and its own metrics at ``/v1/m``), and ``window.analytics._cdn`` is set to the SDK directory before the script
  runs, so the chunks it loads on demand come from the site too.
- RudderStack: ``load(writeKey, dataPlaneUrl, ...)`` with ``getSourceConfig`` (no call to RudderStack's config
  API; error and metrics reporting off), ``loadIntegration: false`` (no device-mode destination scripts) and
  ``polyfillIfRequired: false`` (no polyfill service); the bundled build carries its plugins.

Functions return HTML text; every value is JSON-escaped for the script context (no ``</script>`` can break out).
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from workers.settings import check_api_url
from workers.websites import sdk

DEFAULT_SDK_BASE_URL = "/signal-sdk"


def _js(value: Any) -> str:
    """A JavaScript literal of ``value``, safe inside an HTML <script> element."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def check_sdk_base_url(url: str) -> str:
    """Where the site serves the SDK files: an http(s) URL or a path from the site's root (``/signal-sdk``)."""
    text = url.strip()
    if text.startswith("/") and not text.startswith("//"):
        if any(c in text for c in "?#\"'<> \\"):
            raise ValueError(f"{url!r} is not a path of the site; e.g. /signal-sdk")
        return text.rstrip("/") or "/"
    try:
        return check_api_url(text)
    except ValueError:
        raise ValueError(f"{url!r} is neither a path of the site (/signal-sdk) nor an http(s) URL") from None


def _join(base: str, path: str) -> str:
    return f"{base.rstrip('/')}/{path}"


def _script_tag(base: str, path: str) -> str:
    return f'<script src="{html.escape(_join(base, path), quote=True)}"></script>'


def _merged(base: dict[str, Any], extra: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(base)
    for key, value in (extra or {}).items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def analytics_next(
    write_key: str, *, api_url: str, sdk_base_url: str = DEFAULT_SDK_BASE_URL, options: dict[str, Any] | None = None
) -> str:
    """analytics.js (``@segment/analytics-next``): ``window.analytics`` sends to ``api_url`` and records a page view.

    ``options`` are merged into the load options, e.g. ``{"integrations": {"Segment.io": {"deliveryStrategy":
    {"strategy": "batching", "config": {"size": 10, "timeout": 5000}}}}}`` to send batches to ``/v1/b``."""
    api = urlsplit(check_api_url(api_url))
    base = check_sdk_base_url(sdk_base_url)
    segment_io = {"apiHost": f"{api.netloc}{api.path}/v1", "protocol": api.scheme}
    settings = {
        "writeKey": write_key,
        "cdnURL": base,
        "cdnSettings": {"integrations": {"Segment.io": {"apiKey": write_key, **segment_io}}},
    }
    load_options = _merged({"integrations": {"Segment.io": segment_io}}, options)
    package = sdk.ANALYTICS_NEXT
    return (
        f"<!-- Signal: analytics.js ({package.name} {package.version}, self-hosted) -->\n"
        f"<script>window.analytics = {{_cdn: {_js(base)}}};</script>\n"
        f"{_script_tag(base, package.script)}\n"
        "<script>\n"
        "  window.analytics = AnalyticsNext.AnalyticsBrowser.load(\n"
        f"    {_js(settings)},\n"
        f"    {_js(load_options)});\n"
        "  analytics.page();\n"
        "</script>\n"
    )


def rudderstack(
    write_key: str,
    *,
    api_url: str,
    sdk_base_url: str = DEFAULT_SDK_BASE_URL,
    source_id: str = "signal",
    options: dict[str, Any] | None = None,
) -> str:
    """RudderStack JS v3 (``@rudderstack/analytics-js``, bundled build): ``window.rudderanalytics`` sends to
    ``api_url`` and records a page view.

    ``options`` are added to the load options, e.g. ``{"useBeacon": True}`` to send with ``navigator.sendBeacon``
    to ``/beacon/v1/batch``."""
    api = check_api_url(api_url)
    base = check_sdk_base_url(sdk_base_url)
    source_config = {
        "source": {
            "id": source_id,
            "name": source_id,
            "workspaceId": "signal",
            "enabled": True,
            "config": {"statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}},
            "destinations": [],
        }
    }
    package = sdk.RUDDERSTACK
    return (
        f"<!-- Signal: RudderStack JS v3 ({package.name} {package.version}, bundled build, self-hosted) -->\n"
        f"{_script_tag(base, package.script)}\n"
        "<script>\n"
        "  new rudderanalytics.RudderAnalytics();  // it becomes window.rudderanalytics\n"
        f"  rudderanalytics.load({_js(write_key)}, {_js(api)}, {{\n"
        f"    getSourceConfig: function () {{ return {_js(source_config)}; }},\n"
        "    loadIntegration: false,\n"
        "    polyfillIfRequired: false"
        + "".join(f",\n    {_js(key)}: {_js(value)}" for key, value in (options or {}).items())
        + (
            "\n"
            if "useBeacon" in (options or {})
            else "\n    // useBeacon: true  (send with navigator.sendBeacon to /beacon/v1/batch)\n"
        )
        + "  });\n"
        "  rudderanalytics.page();\n"
        "</script>\n"
    )


@dataclass(frozen=True)
class Snippet:
    sdk: str  # "analytics-next" | "rudderstack"
    title: str
    html: str  # paste into every page's <head>
    sdk_files: str  # what the site must serve, and where


def for_source(
    source_id: str, write_key: str, *, api_url: str, sdk_base_url: str = DEFAULT_SDK_BASE_URL
) -> list[Snippet]:
    """Both snippets of one source, ready to show (the console's Sources page, ``signal-s3 sources snippet``)."""
    base = check_sdk_base_url(sdk_base_url)
    return [
        Snippet(
            "analytics-next",
            "Segment analytics.js (analytics-next)",
            analytics_next(write_key, api_url=api_url, sdk_base_url=base),
            f"{_join(base, 'analytics-next/bundles/')}: index.js and its *.bundle.*.js files from "
            f"{sdk.ANALYTICS_NEXT.name}@{sdk.ANALYTICS_NEXT.version} (package/dist/umd/)",
        ),
        Snippet(
            "rudderstack",
            "RudderStack JavaScript SDK v3",
            rudderstack(write_key, api_url=api_url, sdk_base_url=base, source_id=source_id),
            f"{_join(base, sdk.RUDDERSTACK.script)}: package/dist/npm/modern/bundled/umd/index.js of "
            f"{sdk.RUDDERSTACK.name}@{sdk.RUDDERSTACK.version}",
        ),
    ]
