"""The snippets a website pastes: pointed at this API, with the source's write key, needing no vendor CDN."""

from __future__ import annotations

import re

import pytest

from workers.settings import check_api_url
from workers.websites import sdk, snippet

WK = "wk_Abc-123_xyz"


def test_analytics_next_points_at_this_api_and_its_own_copy_of_the_sdk():
    html = snippet.analytics_next(WK, api_url="https://collect.example.com/", sdk_base_url="/static/sdk/")
    assert '"apiHost": "collect.example.com/v1", "protocol": "https"' in html
    assert f'"writeKey": "{WK}"' in html and f'"apiKey": "{WK}"' in html
    assert '"cdnSettings"' in html  # no settings fetched from cdn.segment.com
    # _cdn is set before the SDK runs: the chunks it loads on demand come from the site too
    assert html.index('window.analytics = {_cdn: "/static/sdk"}') < html.index(
        '<script src="/static/sdk/analytics-next/bundles/index.js"></script>'
    )
    assert "analytics.page();" in html
    assert "segment.com" not in html.replace("@segment/analytics-next", "")


def test_an_api_under_a_path_and_plain_http_keep_their_path_and_scheme():
    html = snippet.analytics_next(WK, api_url="http://127.0.0.1:8084/collect", sdk_base_url="https://cdn.shop.example")
    assert '"apiHost": "127.0.0.1:8084/collect/v1", "protocol": "http"' in html
    assert '<script src="https://cdn.shop.example/analytics-next/bundles/index.js">' in html


def test_rudderstack_gets_its_source_config_inline_and_loads_nothing_else():
    html = snippet.rudderstack(WK, api_url="https://collect.example.com", source_id="src1")
    assert f'rudderanalytics.load("{WK}", "https://collect.example.com", {{' in html
    assert '<script src="/signal-sdk/rudderstack/rsa.js"></script>' in html
    assert 'getSourceConfig: function () { return {"source": {"id": "src1"' in html
    assert '"errors": {"enabled": false}, "metrics": {"enabled": false}' in html
    assert "loadIntegration: false" in html and "polyfillIfRequired: false" in html
    assert "rudderlabs.com" not in html and "rudderstack.com" not in html


def test_values_cannot_break_out_of_the_script():
    html = snippet.rudderstack("</script><script>alert(1)</script>", api_url="https://c.example", source_id="<!--")
    assert html.count("</script>") == 2  # the two closing tags of the snippet itself
    assert "<!--" not in html.split("-->", 1)[1]


@pytest.mark.parametrize(
    "url",
    [
        "collect.example.com",
        "ftp://c.example",
        "https://",
        "https://c.example?x=1",
        "https://c.example#f",
        "https://u:p@c.example",
        "https://c.example:99999",
    ],
)
def test_a_wrong_api_url_is_refused_with_an_example(url):
    with pytest.raises(ValueError, match="https://collect.example.com"):
        check_api_url(url)


@pytest.mark.parametrize("url", ["signal-sdk", "//cdn.example/sdk", "/sdk?v=1", '/s"dk', "ftp://x"])
def test_a_wrong_sdk_base_url_is_refused(url):
    with pytest.raises(ValueError):
        snippet.check_sdk_base_url(url)


def test_for_source_gives_both_snippets_and_what_to_serve():
    found = snippet.for_source("src1", WK, api_url="https://collect.example.com")
    assert [s.sdk for s in found] == ["analytics-next", "rudderstack"]
    assert all(WK in s.html for s in found)
    assert found[0].sdk_files.startswith("/signal-sdk/analytics-next/bundles/: index.js and its *.bundle.*.js")
    assert sdk.ANALYTICS_NEXT.version in found[0].sdk_files
    assert re.search(r"/signal-sdk/rudderstack/rsa\.js: .*@rudderstack/analytics-js@3\.34\.1", found[1].sdk_files)


def test_the_public_api_url_setting_is_checked_and_defaults_to_the_api_address(monkeypatch):
    from pydantic import ValidationError

    from workers.settings import Settings

    monkeypatch.setenv("SIGNAL_PUBLIC_API_URL", "")
    assert Settings(api_host="127.0.0.1", api_port=9000).collection_url == "http://127.0.0.1:9000"
    monkeypatch.setenv("SIGNAL_PUBLIC_API_URL", "https://collect.example.com/")
    assert Settings().collection_url == "https://collect.example.com"
    monkeypatch.setenv("SIGNAL_PUBLIC_API_URL", "collect.example.com")
    with pytest.raises(ValidationError, match="https://collect.example.com"):
        Settings()
