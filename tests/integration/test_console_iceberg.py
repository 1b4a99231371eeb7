"""The console of an iceberg integration in a real browser: the install form shows the Iceberg settings only for
the iceberg variant; the Query & access tab shows the table (catalog, location, snapshots, last maintenance) and how
to query it, at desktop and phone width; the settings page keeps the Iceberg fields of an iceberg integration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    DESKTOP,
    OVERFLOW,
    PHONE,
    UNLABELLED,
    PageErrors,
    expect,
    new_page,
    screenshot,
    sign_in_with_the_keyboard,
)
from tests.support.console import flush, ingest, install
from tests.support.fleet import make_events
from workers.pipeline import tables
from workers.settings import get_settings


@pytest.fixture
def lake(fleet: Any, make_bucket: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("SIGNAL_ICEBERG_SQLITE_PATH", str(tmp_path / "iceberg" / "catalog.db"))
    get_settings.cache_clear()
    iid = install(fleet, make_bucket(), name="Events table", variant="iceberg", partition_fields=["type"])
    for _ in range(3):
        ingest(fleet, iid, make_events(30))
        flush(fleet, iid)
    tables.run_maintenance(fleet.r, iid, settings=get_settings())
    plain = install(fleet, make_bucket(), name="Folders")
    return {"iceberg": iid, "plain": plain}


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_the_table_is_shown_with_its_snapshots_and_queries(browser, lake, console_url, viewport):
    size = f"{viewport['width']}x{viewport['height']}"
    errors = PageErrors()
    page = new_page(browser, viewport, errors)
    sign_in_with_the_keyboard(page, console_url)

    page.goto(console_url + "/integrations/library/amazon_s3/install")
    catalog = page.get_by_role("combobox", name="Iceberg catalog")
    expect(catalog).to_be_hidden()
    page.get_by_role("combobox", name="Variant").select_option("iceberg")
    expect(catalog).to_be_visible()
    expect(page.get_by_role("textbox", name="Iceberg table")).to_have_value("events")
    screenshot(page, f"console-install-iceberg-{size}")

    page.goto(console_url + f"/integrations/{lake['iceberg']}/query")
    panel = page.locator("#iceberg-table")
    expect(panel.locator("h2")).to_contain_text("signal.events")
    expect(page.locator("#table-catalog")).to_contain_text("sql")
    expect(panel).to_contain_text("hour(received_at)")
    expect(panel).to_contain_text("identity(p_type)")
    rows = page.locator("#snapshots tbody tr")
    assert rows.count() == 9  # three flushes of three types each
    expect(rows.first).to_contain_text("append")
    expect(page.locator("#table-maintenance")).to_contain_text("orphan files removed")
    expect(page.locator("#query-duckdb")).to_contain_text("iceberg_scan('s3://")
    expect(page.locator("#query-athena")).to_contain_text('"signal"."events"')
    assert page.locator("#ddl").count() == 0
    screenshot(page, f"console-iceberg-table-{size}")
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate(OVERFLOW) <= 0, page.evaluate(
        """() => Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right >
        document.documentElement.clientWidth + 1).slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className +
        ' ' + e.textContent.slice(0, 40))"""
    )
    body = page.content()
    assert "wJalr" not in body

    page.goto(console_url + f"/integrations/{lake['iceberg']}/settings")
    expect(page.get_by_role("textbox", name="Iceberg namespace")).to_have_value("signal")
    page.goto(console_url + f"/integrations/{lake['plain']}/settings")
    expect(page.get_by_role("combobox", name="Iceberg catalog")).to_be_hidden()
    assert errors == []
    page.context.close()


def test_saving_the_settings_of_an_iceberg_integration_keeps_its_table(browser, lake, console_url, fleet):
    from workers.integrations import registry

    page = new_page(browser, DESKTOP, PageErrors())
    sign_in_with_the_keyboard(page, console_url)
    page.goto(console_url + f"/integrations/{lake['iceberg']}/settings")
    page.locator("#field-name").fill("Events table (renamed)")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    saved = registry.get(fleet.r, lake["iceberg"], max_age_s=0)
    assert saved.name == "Events table (renamed)"
    assert (saved.config.iceberg_namespace, saved.config.iceberg_table) == ("signal", "events")
    assert saved.config.partition_fields == ("type",)
    page.context.close()
