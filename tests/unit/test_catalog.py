"""The catalog: what the install form, the API's schema and the console read about variants and blueprints."""

from __future__ import annotations

import jsonschema
import pytest

from workers.events import blueprint
from workers.integrations import blueprint_fields, bodies, catalog, schema
from workers.integrations.config import IntegrationConfig
from workers.sink import object_keys


def test_variants_have_names_descriptions_and_key_patterns() -> None:
    assert catalog.variant_ids() == ("default", "parquet", "iceberg") == bodies.VARIANTS
    for variant in catalog.VARIANTS:
        assert variant["name"] and len(variant["description"]) > 40
        date = "data/dt=YYYY-MM-DD/hr=HH" if variant["id"] == "iceberg" else "YYYY/MM/DD/HH"
        assert variant["object_key_pattern"] == f"<prefix>{date}/<batch-uuid>" + object_keys.SUFFIXES[variant["id"]]
    assert catalog.variant("parquet")["object_key_pattern"].endswith(".parquet")  # type: ignore[index]
    assert catalog.variant("orc") is None
    assert catalog.ENTRY["variants"] == list(catalog.VARIANTS)


def test_every_config_field_is_in_the_catalog() -> None:
    assert [f["name"] for f in schema.FIELDS] == list(IntegrationConfig.model_fields)
    fields = {f["name"]: f for f in schema.FIELDS}
    assert fields["partition_time"]["allowed_values"] == ["received_at", "timestamp"]
    assert fields["partition_time"]["default"] == "received_at"
    assert fields["partition_time_bound_s"]["default"] == 7 * 24 * 3600


def test_the_blueprint_entry_describes_its_form_fields() -> None:
    entry = catalog.ENTRY["blueprint"]
    assert entry["default"] == blueprint.DEFAULT.public() == catalog.ENTRY["default_blueprint"]
    names = [f["name"] for f in entry["fields"]]
    assert sorted(names) == sorted([*blueprint.FORM_LISTS, "consent.missing"])
    assert all(f["description"] for f in entry["fields"])
    assert entry["removal_reasons"] == ["consent_denied", "filtered_out"]
    assert set(blueprint.to_form(blueprint.DEFAULT)) == set(names)


EXAMPLES = [
    {},
    blueprint.DEFAULT.public(),
    {
        "consent": {"require": ["analytics"], "missing": "allow"},
        "events": {"include": ["track"]},
        "drop_fields": ["context.ip"],
        "hash_fields": ["user_id"],
    },
]


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_blueprint_schema_accepts_what_the_model_accepts(example: dict) -> None:
    body_schema = blueprint_fields.blueprint_schema()
    jsonschema.Draft202012Validator.check_schema(body_schema)
    jsonschema.validate(example, body_schema)
    blueprint.parse_blueprint(example)


@pytest.mark.parametrize(
    "bad",
    [
        {"filters": []},
        {"consent": {}},
        {"events": {"include": ["a"], "exclude": ["b"]}},
        {"consent": {"require": ["a"], "missing": "maybe"}},
    ],
)
def test_the_blueprint_schema_refuses_what_the_model_refuses(bad: dict) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, blueprint_fields.blueprint_schema())
