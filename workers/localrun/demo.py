"""The demo website: static pages on http://localhost:<port> (another origin than the API) that load the real SDKs
with the default source's snippet; their buttons send events from the browser through the collection API."""

from __future__ import annotations

import sys
from pathlib import Path

from workers.localrun.processes import Processes, free_port
from workers.websites import sdk, snippet

DEMO_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><link rel="icon" href="data:,">
{snippet}<style>body{{font:16px system-ui,sans-serif;margin:2rem auto;max-width:44rem}}
button{{margin:.2rem;padding:.4rem .8rem}} pre{{background:#f4f4f4;padding:.6rem;min-height:4rem}}</style></head>
<body><h1>{title}</h1>
<p>This page sends its events with {sdk} to the collection API at <code>{api_url}</code> (another origin). A page view
was sent when the page loaded; each button sends one more event. Watch them arrive in Live Events.</p>
<p><button data-track="Product Viewed">View product</button><button data-track="Product Added">Add to cart</button>
<button data-track="Order Completed">Complete order</button><button id="identify">Sign in as demo-user</button></p>
<p>Other SDK: <a href="{other}">{other_name}</a></p><pre id="sent">page</pre>
<script>
  var sdk = {sdk_object};
  function sent(text) {{ document.getElementById("sent").textContent += "\\n" + text; }}
  document.querySelectorAll("[data-track]").forEach(function (button) {{
    button.addEventListener("click", function () {{
      var name = button.getAttribute("data-track");
      sdk().track(name, {{product_id: "sku-1042", price: 42.5, currency: "EUR"}});
      sent("track " + name);
    }});
  }});
  document.getElementById("identify").addEventListener("click", function () {{
    sdk().identify("demo-user", {{plan: "pro"}});
    sent("identify demo-user");
  }});
</script></body></html>
"""


def write_demo_site(site: Path, write_key: str, api_url: str, cache_dir: Path | None = None) -> None:
    """The demo website: index.html (analytics.js) and rudderstack.html, with the SDK files under /signal-sdk."""
    sdk.install(site / "signal-sdk", cache_dir=cache_dir)
    pages = [
        (
            "index.html",
            "analytics.js (analytics-next)",
            "window.analytics",
            snippet.analytics_next(write_key, api_url=api_url),
        ),
        (
            "rudderstack.html",
            "RudderStack JS v3",
            "window.rudderanalytics",
            snippet.rudderstack(write_key, api_url=api_url),
        ),
    ]
    for (name, sdk_name, sdk_object, html), (other, other_name, _, _) in zip(pages, reversed(pages), strict=True):
        (site / name).write_text(
            DEMO_PAGE.format(
                title=f"Signal demo shop: {sdk_name}",
                snippet=html,
                sdk=sdk_name,
                api_url=api_url,
                other=other,
                other_name=other_name,
                sdk_object=f"function () {{ return {sdk_object}; }}",
            )
        )


def start_demo_site(procs: Processes, api_url: str) -> str | None:
    """Serve the demo website on http://localhost:<port>; its address, or None when the SDKs cannot be fetched."""
    from workers.integrations import sources
    from workers.store.db import redis_client

    site = procs.log_dir / "demo-site"
    try:
        write_demo_site(site, sources.ensure_default(redis_client()).write_key, api_url)
    except sdk.SdkFetchError as exc:
        print(f"no demo website: {exc}")
        return None
    port = free_port()
    procs.start(
        "demo-site",
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(site)],
        lambda: procs.log_has("demo-site", "Serving HTTP"),
        15,
    )
    return f"http://localhost:{port}/"
