"""The console's forms are the catalog's field schema drawn as inputs, and turn back into the admin API's bodies."""

from __future__ import annotations

import copy

import pytest

from tests.support.seed import ACCESS_KEY_ID, SECRET_ACCESS_KEY
from workers.errors import ConfigError
from workers.integrations import blueprint_fields, bodies, catalog, schema
from workers.web import forms


@pytest.fixture
def entry() -> dict:
    return copy.deepcopy(catalog.ENTRY)


def test_every_catalog_field_becomes_an_input_named_by_its_error_path(entry):
    fields = {f.name: f for f in forms.config_fields(entry, {}, {})}
    assert list(fields) == [f"config.{f['name']}" for f in schema.FIELDS]
    region = fields["config.region"]
    assert region.kind == "select" and region.required and region.label == "Region"
    assert [v for v, _ in region.options] == ["", *sorted(schema.FIELDS[1]["allowed_values"])]
    assert fields["config.storage_class"].value == "STANDARD"  # the catalog's default is preselected
    assert fields["config.server_side_encryption"].options[0] == ("", "None")
    assert fields["config.secret_access_key"].kind == "password"
    assert fields["config.kms_key_id"].show_when == ("config.server_side_encryption", ("aws:kms",))
    assert [n for n, f in fields.items() if f.advanced] == [
        "config.role_session_name",
        "config.object_tags",
        "config.batch_max_events",
        "config.batch_max_bytes",
        "config.flush_interval_s",
        "config.buffer_max_bytes",
        "config.endpoint_url",
        "config.addressing_style",
        "config.checksums",
        "config.partition_time",
        "config.partition_time_bound_s",
        "config.partition_fields",
        "config.partition_max_values",
        "config.date_layout",
        "config.iceberg_snapshot_retention_days",
        "config.iceberg_target_file_mb",
    ]
    assert fields["config.iceberg_catalog"].show_when == ("variant", ("iceberg",))
    assert fields["config.batch_max_events"].kind == "number" and fields["config.batch_max_events"].value == "100000"
    assert fields["config.bucket"].description == schema.FIELDS[0]["description"]


def test_a_field_or_variant_added_to_the_catalog_needs_no_other_change(entry):
    entry["fields"].append(
        {
            "name": "compression_level",
            "label": "Compression level",
            "type": "select",
            "required": False,
            "allowed_values": ["1", "6"],
            "description": "gzip level",
        }
    )
    entry["variants"].append({"id": "orc", "name": "ORC", "description": "Columnar objects"})
    (added,) = [f for f in forms.config_fields(entry, {}, {}) if f.name == "config.compression_level"]
    assert added.kind == "select" and [v for v, _ in added.options] == ["", "1", "6"]
    variant = forms.head_fields(entry, [], {}, {})[1]
    assert variant.options == tuple((v["id"], v["name"]) for v in entry["variants"])
    assert variant.options[-1] == ("orc", "ORC") and "ORC: Columnar objects." in variant.description
    body = forms.install_body(entry, {"name": "x", "variant": "orc", "config.compression_level": "6"})
    assert body["variant"] == "orc" and body["config"]["compression_level"] == "6"


def test_secrets_are_never_echoed_and_a_settings_form_shows_them_redacted(entry):
    typed = {"config.secret_access_key": SECRET_ACCESS_KEY, "config.bucket": "typed-bucket"}
    fields = {f.name: f for f in forms.config_fields(entry, typed, {})}
    assert fields["config.secret_access_key"].value == "" and fields["config.bucket"].value == "typed-bucket"
    current = {
        "bucket": "b",
        "access_key_id": "****MPLE",
        "secret_access_key": "****EKEY",
        "session_token": None,
        "batch_max_events": 500,
        "flush_interval_s": 2.5,
    }
    fields = {f.name: f for f in forms.config_fields(entry, {}, {}, current=current)}
    secret = fields["config.secret_access_key"]
    assert (secret.value, secret.current, secret.required, secret.clearable) == ("", "****EKEY", False, False)
    assert fields["config.session_token"].current is None and not fields["config.session_token"].clearable
    assert fields["config.batch_max_events"].value == "500" and fields["config.flush_interval_s"].value == "2.5"
    assert fields["config.bucket"].required


def test_a_form_shown_again_keeps_the_access_key_id_just_typed_but_never_a_secret_or_a_stored_one(entry):
    typed = {
        "config.access_key_id": ACCESS_KEY_ID,
        "config.secret_access_key": SECRET_ACCESS_KEY,
        "config.session_token": "typed-session-token",
    }
    fields = {f.name: f for f in forms.config_fields(entry, typed, {})}
    access_key = fields["config.access_key_id"]
    assert (access_key.kind, access_key.value) == ("text", ACCESS_KEY_ID)  # an identifier: shown as typed
    assert fields["config.secret_access_key"].value == "" and fields["config.secret_access_key"].kind == "password"
    assert fields["config.session_token"].value == "" and fields["config.session_token"].kind == "password"
    current = {"access_key_id": "****MPLE", "secret_access_key": "****EKEY"}
    stored = {f.name: f for f in forms.config_fields(entry, {}, {}, current=current)}["config.access_key_id"]
    assert (stored.value, stored.current) == ("", "****MPLE")  # the stored one only redacted
    retyped = {f.name: f for f in forms.config_fields(entry, typed, {}, current=current)}["config.access_key_id"]
    assert (retyped.value, retyped.current) == (ACCESS_KEY_ID, "****MPLE")


def test_an_install_form_becomes_the_apis_install_body(entry):
    form = {
        "csrf_token": "t",
        "name": "Lake",
        "variant": "default",
        "source_id": "",
        "config.bucket": " lake ",
        "config.region": "us-east-1",
        "config.access_key_id": ACCESS_KEY_ID,
        "config.secret_access_key": SECRET_ACCESS_KEY,
        "config.prefix": "",
        "config.batch_max_events": "500",
        "config.server_side_encryption": "",
    }
    body = forms.install_body(entry, form)
    assert body == {
        "name": "Lake",
        "variant": "default",
        "config": {
            "bucket": "lake",
            "region": "us-east-1",
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            "batch_max_events": "500",
        },
    }
    fields = bodies.validate_install(body)
    assert fields["config"].batch_max_events == 500 and fields["source_id"] is None
    assert forms.install_body(entry, {**form, forms.SKIP_CHECK: "1", "source_id": "s1"}) == {
        **body,
        "verify": False,
        "source_id": "s1",
    }


def test_a_settings_form_keeps_blank_secrets_and_clears_blank_settings(entry):
    body = forms.update_body(
        entry,
        {
            "name": "Lake",
            "config.bucket": "lake",
            "config.secret_access_key": "",
            "config.access_key_id": "AKIANEW",
            "config.session_token.remove": "1",
            "config.prefix": "",
            "config.batch_max_events": "",
        },
    )
    config = body["config"]
    assert "secret_access_key" not in config and config["access_key_id"] == "AKIANEW"
    assert config["session_token"] is None and config["prefix"] is None and config["batch_max_events"] is None
    assert body["name"] == "Lake" and "verify" not in body


def test_errors_are_found_by_their_field_path_and_forms_parse_like_browsers_send_them():
    error = ConfigError(
        [
            {"field": "config.region", "message": "a"},
            {"field": "config.region", "message": "b"},
            {"field": "name", "message": "c"},
        ]
    )
    assert forms.errors_by_field(error) == {"config.region": "a", "name": "c"}
    assert forms.errors_by_field(None) == {}
    assert forms.parse(b"name=Web+site&config.prefix=events%2F&empty=&name=Last") == {
        "name": "Last",
        "config.prefix": "events/",
        "empty": "",
    }
    assert forms.Field("config.access_key_id", "Access key ID", "password").id == "field-config-access-key-id"


def test_the_library_search_matches_every_word_in_name_category_or_description():
    assert [e["id"] for e in catalog.search("")] == ["amazon_s3"]
    assert [e["id"] for e in catalog.search("athena BUCKET", "cloud storage")] == ["amazon_s3"]
    assert catalog.search("s3 bigquery") == [] and catalog.search("", "Analytics") == []
    assert catalog.categories() == ["Cloud Storage"]


# -- blueprint ----------------------------------------------------------------------------------------------------


def test_blueprint_inputs_are_the_catalogs_named_by_their_error_paths_default_forward_all():
    fields = forms.blueprint_fields({}, {})
    assert [f.name for f in fields] == [f"blueprint.{f['name']}" for f in blueprint_fields.BLUEPRINT_FIELDS]
    by_name = {f.name: f for f in fields}
    assert by_name["blueprint.consent.missing"].kind == "select"
    assert by_name["blueprint.consent.missing"].value == "deny"
    assert [v for v, _ in by_name["blueprint.consent.missing"].options] == ["deny", "allow"]
    assert all(f.value == "" for n, f in by_name.items() if n != "blueprint.consent.missing")
    assert (
        forms.install_body(catalog.ENTRY, {"name": "x", "blueprint.consent.missing": "deny"}).get("blueprint") is None
    )  # nothing typed: the default blueprint


def test_a_blueprint_form_becomes_the_apis_blueprint_and_a_stored_one_prefills_it():
    from workers.events.blueprint import parse_blueprint

    form = {
        "name": "x",
        "blueprint.consent.require": "analytics, ads",
        "blueprint.consent.missing": "allow",
        "blueprint.events.exclude": "identify\nHeartbeat",
        "blueprint.drop_fields": "context.ip",
        "blueprint.hash_fields": "user_id, traits.email",
        "blueprint.events.include": "",
    }
    expected = {
        "consent": {"require": ["analytics", "ads"], "missing": "allow"},
        "events": {"exclude": ["identify", "Heartbeat"]},
        "drop_fields": ["context.ip"],
        "hash_fields": ["user_id", "traits.email"],
    }
    assert forms.install_body(catalog.ENTRY, form)["blueprint"] == expected
    assert forms.update_body(catalog.ENTRY, form)["blueprint"] == expected
    stored = {f.name: f.value for f in forms.blueprint_fields({"name": "x"}, {}, current=parse_blueprint(expected))}
    assert stored["blueprint.consent.require"] == "analytics, ads"
    assert stored["blueprint.events.exclude"] == "identify, Heartbeat"
    assert stored["blueprint.consent.missing"] == "allow"
    # a settings form with every field blank forwards all events again; one without blueprint inputs changes nothing
    blank = {n: "" for n in stored}
    assert forms.update_body(catalog.ENTRY, {"name": "x", **blank})["blueprint"] == {}
    assert "blueprint" not in forms.update_body(catalog.ENTRY, {"name": "x"})


def test_blueprint_errors_land_next_to_their_inputs_with_the_apis_messages():
    from workers.events.blueprint import parse_blueprint

    form = {
        "blueprint.events.include": "track",
        "blueprint.events.exclude": "identify",
        "blueprint.hash_fields": "event_id",
    }
    with pytest.raises(ConfigError) as raised:
        parse_blueprint(forms.install_body(catalog.ENTRY, form)["blueprint"])
    errors = forms.errors_by_field(raised.value)
    fields = {f.name: f for f in forms.blueprint_fields(form, errors)}
    assert fields["blueprint.events.include"].error == errors["blueprint.events"]
    assert "either include or exclude" in fields["blueprint.events.include"].error
    assert fields["blueprint.hash_fields"].error == errors["blueprint.hash_fields"]
    assert "event_id is needed to deliver" in fields["blueprint.hash_fields"].error
    assert fields["blueprint.events.include"].value == "track"  # what was typed stays
    assert forms.blueprint_shown(list(fields.values()), errors) >= set(errors)
