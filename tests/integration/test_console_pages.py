"""Each page and action of the console, read over HTTP as a person would read it: what it shows comes from the same
plain functions the admin API calls, and what it does changes the same state.

The console runs in this process (uvicorn in a thread) against the fleet's redis-server and moto; uploads run in this
process too (``upload.upload`` against moto), so no worker is needed here. The browser tests drive the real fleet.
"""

from __future__ import annotations

import time

import httpx

from tests.integration.conftest import CONSOLE_TOKEN
from tests.support.api import serve_in_thread
from tests.support.console import ConsoleClient, cells, flush, ingest, install, parse, row_of
from tests.support.fleet import make_events
from tests.support.processes import wait_until
from tests.support.s3_fixtures import unique_bucket
from tests.support.seed import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SESSION_TOKEN
from workers.classify import HINTS
from workers.errors import ConfigError
from workers.integrations import bodies, catalog, registry, schema, sources
from workers.observe import fleet as fleet_mod
from workers.store import keys
from workers.web import forms
from workers.websites import snippet

# -- Integrations: Installed and the Integration Library -------------------------------------------------------------


def test_installed_lists_each_integration_with_its_delivery_and_a_visible_error_badge(fleet, console, make_bucket):
    website = sources.create(fleet.r, "Website")
    good = install(fleet, make_bucket(), name="Events lake", source_id=website.id)
    bad = install(fleet, unique_bucket(), name="Broken bucket")
    quiet = install(fleet, make_bucket(), name="Paused")
    registry.set_enabled(fleet.r, quiet, False)
    ingest(fleet, good, make_events(30))
    assert flush(fleet, good)
    ingest(fleet, good, make_events(4))  # buffered
    ingest(fleet, bad, make_events(5))
    flush(fleet, bad)

    table = console.page("/integrations").by_id("installed")
    assert [th.text for th in table.find_all("th")] == [
        "Name",
        "Source",
        "Enabled",
        "Buffered",
        "Delivered",
        "Last success",
        "Error",
    ]
    name, source, enabled, buffered, delivered, last_success, error = cells(row_of(table, "Events lake"))
    assert source == "Website" and enabled == "Enabled" and buffered == "4" and delivered == "30"
    assert last_success.endswith("s ago") and error == "none"
    link = row_of(table, "Events lake").find("a")
    assert link.get("href") == f"/integrations/{good}"
    name, source, enabled, buffered, delivered, last_success, error = cells(row_of(table, "Broken bucket"))
    # its five events are held, not buffered
    assert source == "Default source" and buffered == "0" and delivered == "0" and last_success == "never"
    badge = row_of(table, "Broken bucket").find("span", class_="error")
    assert badge.text == "NoSuchBucket" and "badge" in badge.get("class")
    assert cells(row_of(table, "Paused"))[2] == "Disabled"


def test_the_library_offers_cloud_storage_and_a_search_and_installs_amazon_s3(console):
    page = console.page("/integrations/library")
    assert page.find("nav", class_="tabs").find("a", aria_current="page").text == "Integration Library"
    options = [o.text for o in page.by_id("category").find_all("option")]
    assert "Cloud Storage" in options
    assert page.find("label", for_="category") and page.find("label", for_="q")

    page = console.page("/integrations/library?category=Cloud+Storage&q=")
    (card,) = page.by_id("library").find_all("li")
    assert card.find("h2").text == "Amazon S3"
    assert catalog.ENTRY["description"] in card.text
    install_link = card.find("a")
    assert install_link.text == "Install" and install_link.get("href") == "/integrations/library/amazon_s3/install"
    assert console.page("/integrations/library?q=athena+bucket").by_id("library")
    for query in ("?q=bigquery", "?category=Analytics"):
        page = console.page("/integrations/library" + query)
        assert not page.find_all(id="library") and "Nothing in the library matches" in page.text


# -- the install form -------------------------------------------------------------------------------------------------


def test_the_install_form_is_built_from_the_catalog_field_schema(fleet, console):
    sources.create(fleet.r, "Website")
    page = console.page("/integrations/library/amazon_s3/install")
    form = page.find("form", class_="form")
    advanced = form.find("details")
    assert advanced.find("summary").text == "Advanced settings" and "open" not in advanced.attrs
    for f in schema.FIELDS:
        name = f"config.{f['name']}"
        control = form.find(name=name)
        label = form.find("label", for_=control.get("id"))
        assert label.text.startswith(f["label"]), label.text
        required = next(iter(label.find_all("span", class_="req")), None)
        if f.get("required_when"):  # required with the default of the field it depends on, and marked so
            ((depends, value),) = f["required_when"].items()
            mark = label.find("span", **{"data-required-when": f"config.{depends}"})
            assert mark.get("data-required-value") == value
            default = next(d.get("default") for d in schema.FIELDS if d["name"] == depends)
            assert (required is not None) is (default == value), f["name"]
        else:
            assert (required is not None) is f["required"], f["name"]
        help_id = control.get("aria-describedby").split()[0]
        assert form.by_id(help_id).text == f["description"]
        assert bool(advanced.find_all(name=name)) is bool(f.get("advanced"))
        if f["type"] == "select":
            assert control.tag == "select"
            assert [o.get("value") for o in control.find_all("option")][1:] == list(f["allowed_values"])
        elif f["type"] == "boolean":
            assert control.tag == "select"
            assert [o.get("value") for o in control.find_all("option")] == ["false", "true"]
        elif f["name"] in forms.IDENTIFIERS:  # stored like a secret, but an identifier: a text input, empty
            assert control.get("type") == "text" and control.get("autocomplete") == "off"
            assert control.get("value") == ""
        elif f["type"] == "secret":
            assert control.get("type") == "password" and control.get("autocomplete") == "off"
            assert control.get("value") == ""
        else:
            assert control.tag == "input" and control.get("type") == "text"
    kms = form.find(name="config.kms_key_id")
    row = [d for d in form.find_all("div", class_="field") if d.find_all(name="config.kms_key_id")][0]
    assert (row.get("data-show-when"), row.get("data-show-value")) == ("config.server_side_encryption", "aws:kms")
    assert kms.get("value") == ""
    assert form.find(name="config.storage_class").find("option", selected="").text == "STANDARD"
    variants = form.find("select", name="variant")
    assert [(o.get("value"), o.text) for o in variants.find_all("option")] == [
        ("default", "NDJSON (gzip)"),
        ("parquet", "Parquet (zstd)"),
        ("iceberg", "Apache Iceberg table"),
    ]
    # the Iceberg settings belong to the iceberg variant: the form shows them when it is chosen
    catalog_row = [d for d in form.find_all("div", class_="field") if d.find_all(name="config.iceberg_catalog")][0]
    assert (catalog_row.get("data-show-when"), catalog_row.get("data-show-value")) == ("variant", "iceberg")
    assert form.find("input", name="name").get("value") == "Amazon S3"
    assert [o.text for o in form.find("select", name="source_id").find_all("option")] == [
        "Default source (created on install)",
        "Website",
    ]
    assert form.find("button", type="submit").text == "Install Integration"
    assert form.find("input", type="checkbox", name="skip_bucket_check")
    for control in form.find_all("input") + form.find_all("select"):
        if control.get("type") != "hidden":
            assert form.find_all("label", for_=control.get("id")), control.attrs


def test_variants_and_fields_added_to_the_catalog_appear_in_the_form(console, monkeypatch):
    monkeypatch.setitem(
        catalog.ENTRY,
        "variants",
        [*catalog.VARIANTS, {"id": "orc", "name": "ORC", "description": "Columnar ORC objects"}],
    )
    monkeypatch.setitem(
        catalog.ENTRY,
        "fields",
        [
            *schema.FIELDS,
            {
                "name": "row_group_events",
                "label": "Row group events",
                "type": "integer",
                "required": False,
                "advanced": True,
                "description": "Events per Parquet row group.",
            },
        ],
    )
    form = console.page("/integrations/library/amazon_s3/install").find("form", class_="form")
    assert [o.text for o in form.find("select", name="variant").find_all("option")] == [
        "NDJSON (gzip)",
        "Parquet (zstd)",
        "Apache Iceberg table",
        "ORC",
    ]
    assert "ORC: Columnar ORC objects." in form.text
    added = form.find("details").find("input", name="config.row_group_events")
    assert form.find("label", for_=added.get("id")).text == "Row group events"


def test_wrong_fields_show_the_apis_messages_next_to_them_and_keep_what_was_typed_but_secrets(
    fleet, console, console_url, make_bucket
):
    typed = {
        "name": "Lake",
        "config.bucket": "Bad_Bucket",
        "config.region": "us-east-1",
        "config.access_key_id": ACCESS_KEY_ID,
        "config.secret_access_key": SECRET_ACCESS_KEY,
        "config.prefix": "/events",
        "config.server_side_encryption": "aws:kms",
        "config.batch_max_events": "0",
    }
    response = console.post("/integrations/library/amazon_s3/install", typed)
    assert response.status_code == 200
    page = parse(response.text)
    api_body = {
        "name": "Lake",
        "config": {
            "bucket": "Bad_Bucket",
            "region": "us-east-1",
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "prefix": "/events",
            "server_side_encryption": "aws:kms",
            "batch_max_events": 0,
        },
    }
    api = httpx.post(
        f"{console_url}/v1/admin/integration-catalog/amazon_s3/install",
        json=api_body,
        headers={"Authorization": f"Bearer {CONSOLE_TOKEN}"},
    )
    assert api.status_code == 422
    expected = {e["field"]: e["message"] for e in api.json()["errors"]}
    assert set(expected) == {"config.bucket", "config.prefix", "config.kms_key_id", "config.batch_max_events"}
    for field, message in expected.items():
        control = page.find(name=field)
        assert control.get("aria-invalid") == "true"
        error = page.by_id(control.get("id") + "-error")
        assert error.text == f"Error: {message}"
    summary = page.by_id("error-summary")
    assert summary.find("h2").text == "4 fields to fix"
    assert [a.text for a in summary.find_all("a")] == list(expected.values())
    assert page.find("details").get("open") == ""  # an advanced field is wrong: shown, not folded
    assert page.find(name="config.bucket").get("value") == "Bad_Bucket"
    assert page.find(name="config.prefix").get("value") == "/events"
    assert page.find(name="name").get("value") == "Lake"
    # the access key ID the person just typed stays (an identifier); the secret access key is never sent back
    assert page.find(name="config.access_key_id").get("value") == ACCESS_KEY_ID
    assert page.find(name="config.secret_access_key").get("value") == "" and SECRET_ACCESS_KEY not in response.text
    assert page.by_id("retype-secrets").text == (
        "Secrets are never sent back to the browser: type the secret access key again."
    )
    assert registry.list_all(fleet.r) == []
    try:
        bodies.validate_install(api_body)
    except ConfigError as exc:
        assert {e["field"]: e["message"] for e in exc.errors} == expected


def test_a_failed_bucket_check_shows_the_troubleshooting_row_and_stores_nothing(fleet, console):
    missing = unique_bucket()
    response = console.post(
        "/integrations/library/amazon_s3/install",
        {
            "name": "Lake",
            "config.bucket": missing,
            "config.region": "us-east-1",
            "config.access_key_id": ACCESS_KEY_ID,
            "config.secret_access_key": SECRET_ACCESS_KEY,
        },
    )
    row = parse(response.text).by_id("bucket-check")
    code, message, hint = (td.text for td in row.find("tbody").find_all("td"))
    assert code == "NoSuchBucket" and hint == HINTS["NoSuchBucket"] and message
    page = parse(response.text)
    assert page.find(name="config.bucket").get("value") == missing
    assert page.find(name="config.access_key_id").get("value") == ACCESS_KEY_ID  # kept: only secrets are retyped
    assert page.find(name="config.secret_access_key").get("value") == "" and SECRET_ACCESS_KEY not in response.text
    assert "type the secret access key again" in page.by_id("retype-secrets").text
    assert registry.list_all(fleet.r) == []


def test_install_integration_lands_on_the_new_integration_with_its_default_blueprint(fleet, console, make_bucket):
    website = sources.create(fleet.r, "Website")
    bucket = make_bucket()
    response = console.post(
        "/integrations/library/amazon_s3/install",
        {
            "name": "Lake",
            "variant": "default",
            "source_id": website.id,
            "config.bucket": bucket,
            "config.region": "us-east-1",
            "config.access_key_id": ACCESS_KEY_ID,
            "config.secret_access_key": SECRET_ACCESS_KEY,
            "config.prefix": "events/",
            "config.storage_class": "STANDARD_IA",
            "config.server_side_encryption": "AES256",
        },
    )
    assert response.status_code == 303
    (integ,) = registry.list_all(fleet.r)
    assert response.headers["location"] == f"/integrations/{integ.id}"
    assert integ.source_id == website.id and integ.config.storage_class == "STANDARD_IA"
    assert integ.config.secret_access_key.get_secret_value() == SECRET_ACCESS_KEY
    page = console.page(response.headers["location"])
    assert page.find("div", class_="notice").text == "Lake installed with the default blueprint."
    assert page.by_id("blueprint").text == "Forwards all events unchanged."
    assert page.find("h1").text == "Lake"
    assert f"s3://{bucket}/events/" in page.text and "Website" in page.text
    facts = {d.find("dt").text: d.find("dd").text for d in page.find("dl", class_="facts").find_all("div")}
    assert facts["Variant"] == "NDJSON (gzip)"  # the catalog's name of the variant, not its id


# -- Sources and Fleet ------------------------------------------------------------------------------------------------


def test_sources_create_a_source_and_show_its_write_key_to_copy(fleet, console):
    response = console.post("/sources", {"name": "Website"})
    (source,) = sources.list_all(fleet.r)
    assert response.headers["location"] == f"/sources#source-{source.id}"
    page = console.page("/sources")
    assert "Source Website created: copy its write key below." in page.text
    card = page.by_id(f"source-{source.id}")
    assert card.find("h2").text == "Website"
    assert card.by_id(f"write-key-{source.id}").text == source.write_key
    assert card.find("button", class_="copy").get("data-copy") == f"write-key-{source.id}"
    assert "None yet" in card.text
    iid = install(fleet, unique_bucket(), name="Lake", source_id=source.id)
    assert console.page("/sources").by_id(f"source-{source.id}").find("a", href=f"/integrations/{iid}").text == "Lake"

    empty = parse(console.post("/sources", {"name": "  "}).text)
    assert empty.by_id("source-name-error").text == "Error: name must be a string of 1 to 200 characters"
    assert len(sources.list_all(fleet.r)) == 1


def test_sources_show_the_website_snippets_and_the_collection_settings(fleet, console, console_settings):
    source = sources.create(fleet.r, "Shop", allowed_origins=["https://www.shop.example"], rate_limit_eps=50)
    card = console.page("/sources").by_id(f"source-{source.id}")
    url = console_settings.collection_url
    expected = snippet.for_source(source.id, source.write_key, api_url=url)
    assert [d.find("summary").text for d in card.find_all("details", class_="snippet")] == [sn.title for sn in expected]
    for sn in expected:
        shown = card.by_id(f"snippet-{sn.sdk}-{source.id}")
        assert shown.text == " ".join(sn.html.split())  # the same text the CLI prints (the reader folds spaces)
        assert card.find("button", data_copy=f"snippet-{sn.sdk}-{source.id}").text == f"Copy {sn.title} snippet"
    assert url in card.text
    facts = {d.find("dt").text: d.find("dd").text for d in card.find("dl", class_="facts").find_all("div")}
    assert facts["Allowed origins"] == "https://www.shop.example" and facts["Rate limit"] == "50 events/s"


def test_fleet_shows_queue_depths_beat_totals_and_flower_when_configured(
    fleet, console, console_settings, console_url, make_bucket
):
    from workers.queue.producer import Broker
    from workers.settings import Settings

    broker = Broker(Settings(redis_url=fleet.env["SIGNAL_REDIS_URL"]))
    for _ in range(3):
        broker.ingest("some-integration", [{"type": "track"}])
    broker.upload("some-integration", "batch")
    broker.close()
    iid = install(fleet, unique_bucket())
    ingest(fleet, iid, make_events(6))
    flush(fleet, iid)  # held
    ingest(fleet, iid, make_events(2))
    fleet.r.set(keys.BEAT_LAST_TICK, int(time.time() * 1000) - 2000)

    page = console.page("/fleet")
    assert page.by_id("queue-ingest").find("p", class_="big").text == "3"
    assert page.by_id("queue-flush").find("p", class_="big").text == "1"
    assert page.by_id("beat").find("time").text in ("2 s ago", "3 s ago")
    assert page.by_id("buffered-total").find("p", class_="big").text == "2"  # the 6 held are not buffered
    assert page.by_id("held-total").text.startswith("Held 6 events in 1 batch")
    assert "No worker answered" in page.text
    assert not page.find_all(id="flower-link")
    assert page.find("div", data_refresh="/fleet/panel")

    from workers.web.app import create_app

    with_flower = console_settings.model_copy(update={"flower_url": "http://127.0.0.1:5555"})
    with serve_in_thread(create_app(with_flower)) as url:
        other = ConsoleClient(url)
        other.sign_in(CONSOLE_TOKEN)
        assert other.page("/fleet").by_id("flower-link").get("href") == "http://127.0.0.1:5555"
        other.close()


def test_fleet_lists_the_workers_online_and_beats_ticks(fleet, console, start_worker, start_beat):
    worker = start_worker(queues="flush")
    start_beat()
    page = console.page("/fleet")
    (row,) = page.by_id("workers").find("tbody").find_all("tr")
    assert cells(row)[0].startswith(worker.node_name + "@") and cells(row)[1] == "flush"
    wait_until(lambda: fleet_mod.last_tick_ms(fleet.r), 30, message="beat never ticked")
    assert not console.page("/fleet").by_id("beat").get("class").endswith("bad")


# -- what a page never shows --------------------------------------------------------------------------------------


def test_everything_users_and_websites_send_is_shown_as_text(fleet, console):
    attack = "<img src=x onerror=alert(1)>"
    source = sources.create(fleet.r, f"Site {attack}")
    iid = install(fleet, unique_bucket(), name="<script>alert('name')</script>", source_id=source.id)
    ingest(fleet, iid, [{"type": "track", "event": attack, "anonymous_id": attack, "event_id": "xss-1"}])
    for path in (
        "/integrations",
        "/sources",
        f"/integrations/{iid}",
        f"/integrations/{iid}/live",
        f"/integrations/{iid}/live/rows",
        f"/integrations/{iid}/settings",
    ):
        html = console.get(path).text
        assert "<img src=x" not in html and "<script>alert" not in html, path
        assert "&lt;img src=x onerror=alert(1)&gt;" in html or "&lt;script&gt;" in html, path
    assert attack in console.page(f"/integrations/{iid}/live").by_id("live-events").text


def test_no_secret_appears_in_any_page(fleet, console, console_settings, make_bucket):
    iid = install(fleet, make_bucket(), session_token=SESSION_TOKEN)
    held = install(fleet, unique_bucket(), name="Held")
    ingest(fleet, held, make_events(2))
    flush(fleet, held)
    secrets = [
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        SESSION_TOKEN,
        CONSOLE_TOKEN,
        *console_settings.secret_keys,
        SECRET_ACCESS_KEY[:-4],
        SESSION_TOKEN[:-4],
    ]
    pages = [
        "/integrations",
        "/integrations/library",
        "/integrations/library/amazon_s3/install",
        "/sources",
        "/fleet",
        "/fleet/panel",
    ]
    for one in (iid, held):
        pages += [
            f"/integrations/{one}{tab}"
            for tab in ("", "/status/panel", "/live", "/live/rows", "/dead-letter", "/settings", "/query", "/delete")
        ]
    texts = [console.get(path).text for path in pages]
    texts.append(
        console.post(
            f"/integrations/{iid}/settings",
            {"name": "x", "config.bucket": "Bad_Bucket", "config.secret_access_key": SECRET_ACCESS_KEY},
        ).text
    )
    texts.append(
        console.post(
            "/integrations/library/amazon_s3/install",
            {
                "name": "x",
                "config.bucket": unique_bucket(),
                "config.region": "us-east-1",
                "config.access_key_id": ACCESS_KEY_ID,
                "config.secret_access_key": SECRET_ACCESS_KEY,
                "config.session_token": SESSION_TOKEN,
            },
        ).text
    )
    for path, text in zip(pages + ["settings error", "install error"], texts, strict=True):
        for secret in secrets:
            if path == "install error" and secret == ACCESS_KEY_ID:
                continue  # the person's own access key ID, just typed, stays in its input (an identifier)
            assert secret not in text, (path, secret[:6])
    assert texts[-1].count(ACCESS_KEY_ID) == 1  # only there, in the input's value
    assert "****EKEY" in texts[pages.index(f"/integrations/{iid}/settings")]
