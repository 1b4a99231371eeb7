"""The console's install and settings forms, built from the catalog's field schema (``workers.integrations.catalog``).

A form field is named by the path the API's validation errors use (``name``, ``source_id``, ``config.region``,
``blueprint.consent.require``), so
each ``ConfigError`` message lands next to its input without translation. Forms turn into the same bodies the admin
API takes (install, PATCH); validation happens once, in ``workers.integrations.config`` /
``workers.integrations.registry``. Secrets are never
echoed: their inputs are always empty, a settings form shows their redacted value (``****`` + last 4) instead. The
access key ID is stored and shown like a secret, but it is an identifier (CloudTrail shows it): a form shown again
after an error keeps what the person just typed in it, never the stored value.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from workers.errors import ConfigError
from workers.events import blueprint
from workers.integrations import catalog
from workers.integrations.blueprint_fields import BLUEPRINT_FIELDS
from workers.integrations.sources import DEFAULT_SOURCE_ID, DEFAULT_SOURCE_NAME

FORM_MAX_FIELDS = 200
SKIP_CHECK = "skip_bucket_check"
VARIANT = "variant"  # the install form's choice of output format (not a config field)
# Fields of type "secret" that identify rather than authenticate: a text input that shows what was just typed.
IDENTIFIERS = frozenset({"access_key_id"})


@dataclass(frozen=True)
class Field:
    """One input as a template draws it."""

    name: str  # the form field name, also the error path
    label: str
    kind: str  # text | number | password | select
    description: str = ""
    required: bool = False
    options: tuple[tuple[str, str], ...] = ()  # (value, label) of a select
    value: str = ""
    error: str | None = None
    current: str | None = None  # a secret's redacted current value
    clearable: bool = False  # an optional secret that is set: offer to remove it
    advanced: bool = False
    show_when: tuple[str, tuple[str, ...]] | None = None  # (form field name, values) this field belongs to
    required_with: tuple[str, str] | None = None  # (form field name, value) that makes this field required

    @property
    def id(self) -> str:
        return "field-" + self.name.replace(".", "-").replace("_", "-")


def parse(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (the last value of a repeated name wins)."""
    return dict(
        parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=FORM_MAX_FIELDS)
    )


def errors_by_field(error: ConfigError | None) -> dict[str, str]:
    """The first message for each field path of a ``ConfigError``."""
    out: dict[str, str] = {}
    for e in error.errors if error is not None else ():
        out.setdefault(e["field"], e["message"])
    return out


BLUEPRINT_PREFIX = "blueprint."
_BLUEPRINT_LABELS = {
    "consent.require": "Required consent categories",
    "consent.missing": "Events without consent information",
    "events.include": "Only these events",
    "events.exclude": "All events except",
    "drop_fields": "Fields to remove",
    "hash_fields": "Fields to hash",
}


def blueprint_fields(
    form: dict[str, str], errors: dict[str, str], *, current: blueprint.Blueprint | None = None
) -> list[Field]:
    """The inputs of a blueprint (``BLUEPRINT_FIELDS``), named ``blueprint.<field>`` like the API's errors.
    A submitted form shows what was typed; otherwise the ``current`` blueprint (a settings form), else the default.
    An error of a whole section (``blueprint.events``: include and exclude both given) shows on its first input."""
    typed = any(k.startswith(BLUEPRINT_PREFIX) for k in form)
    stored = blueprint.to_form(current if current is not None else blueprint.DEFAULT)
    names = [BLUEPRINT_PREFIX + f["name"] for f in BLUEPRINT_FIELDS]
    placed = dict(errors)
    for key, message in errors.items():
        if key.startswith("blueprint") and key not in names:
            first = next((n for n in names if n.startswith(key + ".")), names[0])
            placed.setdefault(first, message)
    out = []
    for f, name in zip(BLUEPRINT_FIELDS, names, strict=True):
        options: tuple[tuple[str, str], ...] = ()
        if f["type"] == "select":
            options = tuple((v, v) for v in f["allowed_values"])
        value = form.get(name, "") if typed else stored.get(f["name"], "")
        out.append(
            Field(
                name=name,
                label=_BLUEPRINT_LABELS.get(f["name"], f["name"]),
                kind="select" if f["type"] == "select" else "text",
                description=f["description"] + (" Comma-separated." if f["type"] == "list" else ""),
                options=options,
                value=value or _text(f.get("default")),
                error=placed.get(name),
            )
        )
    return out


def blueprint_shown(fields: list[Field], errors: dict[str, str]) -> set[str]:
    """The error paths the blueprint inputs show (their own, and a section's on its first input)."""
    names = {f.name for f in fields}
    return names | {k for k in errors if k.startswith("blueprint") and k not in names}


def blueprint_body(form: dict[str, str]) -> dict[str, Any] | None:
    """The blueprint of a submitted form (``blueprint.from_form``; ``{}`` forwards all events), or None when the form
    has no blueprint inputs (nothing to change)."""
    values = {k[len(BLUEPRINT_PREFIX) :]: v for k, v in form.items() if k.startswith(BLUEPRINT_PREFIX)}
    return blueprint.from_form(values) if values else None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):  # object tags, as a form writes them
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):  # partition fields
        return ", ".join(str(v) for v in value)
    return str(value)


def config_fields(
    entry: dict[str, Any], values: dict[str, str], errors: dict[str, str], *, current: dict[str, Any] | None = None
) -> list[Field]:
    """The inputs of an entry's config. ``values`` are what was typed (form names); ``current`` is the public config
    of an installed integration (a settings form: secrets redacted, blank keeps them)."""
    shown = {f["name"]: _field_value(f, values, current) for f in entry["fields"]}
    return [_config_field(f, shown, values, errors, current) for f in entry["fields"]]


def _field_value(f: dict[str, Any], values: dict[str, str], current: dict[str, Any] | None) -> str:
    """What the input of ``f`` shows: what was typed, else the current setting, else the default (or, for a value
    the catalog proposes, a new random one)."""
    name = f"config.{f['name']}"
    if f["type"] == "secret":
        # a secret is never echoed; an identifier only as the person typed it (the stored one stays redacted)
        return values.get(name, "") if f["name"] in IDENTIFIERS else ""
    if name in values:
        return values[name]
    if current is not None and f["name"] in current:
        return _text(current[f["name"]])
    if current is None and f.get("proposed"):
        return "signal-" + uuid.uuid4().hex
    return _text(f.get("default"))


def _config_field(
    f: dict[str, Any],
    shown: dict[str, str],
    values: dict[str, str],
    errors: dict[str, str],
    current: dict[str, Any] | None,
) -> Field:
    name = f"config.{f['name']}"
    kind = {"select": "select", "secret": "password", "integer": "number", "number": "number", "boolean": "select"}.get(
        f["type"], "text"
    )
    if f["name"] in IDENTIFIERS:
        kind = "text"
    options: tuple[tuple[str, str], ...] = ()
    if f["type"] == "select":
        blank = (("", "Choose\u2026"),) if f["required"] else (("", "Default" if "default" in f else "None"),)
        labels = f.get("value_labels", {})
        options = blank + tuple((v, labels.get(v, v)) for v in f["allowed_values"])
    elif f["type"] == "boolean":
        options = (("false", "No"), ("true", "Yes"))
    redacted = current.get(f["name"]) if current is not None and f["type"] == "secret" else None
    when = f.get("required_when")
    required_with = (f"config.{next(iter(when))}", next(iter(when.values()))) if when and redacted is None else None
    required_now = f["required"] or (
        when is not None and all(shown.get(control) == wanted for control, wanted in when.items())
    )
    show = f.get("shown_when") or ({k: [v] for k, v in when.items()} if when else None)
    return Field(
        name=name,
        label=f.get("label") or f["name"],
        kind=kind,
        description=f["description"],
        required=required_now and not (redacted is not None),
        options=options,
        value=shown[f["name"]],
        error=errors.get(name),
        current=redacted,
        clearable=redacted is not None and not required_now,
        advanced=bool(f.get("advanced")),
        show_when=(_control(next(iter(show))), tuple(next(iter(show.values())))) if show else None,
        required_with=required_with,
    )


def _control(name: str) -> str:
    """The form input a ``shown_when`` names: the install's ``variant`` (a settings form holds it hidden), else a
    config field."""
    return name if name == VARIANT else f"config.{name}"


def name_field(form: dict[str, str], errors: dict[str, str]) -> Field:
    return Field(
        "name",
        "Name",
        "text",
        "How this integration is shown in the console.",
        True,
        value=form.get("name", ""),
        error=errors.get("name"),
    )


def _sentence(text: str) -> str:
    """``text`` ending with one full stop (catalog descriptions may or may not end with one)."""
    return text if text.endswith(".") else text + "."


def head_fields(
    entry: dict[str, Any], source_list: list[Any], form: dict[str, str], errors: dict[str, str]
) -> list[Field]:
    """The inputs of an install form above the config: name, variant and source."""
    variants = tuple((v["id"], v["name"]) for v in entry["variants"])
    source_options = tuple((s.id, s.name) for s in source_list)
    default_source = DEFAULT_SOURCE_ID
    if not any(s_id == DEFAULT_SOURCE_ID for s_id, _ in source_options):
        source_options = (("", f"{DEFAULT_SOURCE_NAME} (created on install)"),) + source_options
        default_source = ""
    return [
        name_field(form, errors),
        Field(
            "variant",
            "Variant",
            "select",
            " ".join(f"{v['name']}: {_sentence(v['description'])}" for v in entry["variants"]),
            True,
            options=variants,
            value=form.get("variant", variants[0][0]),
            error=errors.get("variant"),
        ),
        Field(
            "source_id",
            "Source",
            "select",
            "Where its events come from: every event sent with this source's write key is delivered here.",
            False,
            options=source_options,
            value=form.get("source_id", default_source),
            error=errors.get("source_id"),
        ),
    ]


def applies(
    f: dict[str, Any], entry: dict[str, Any], form: dict[str, str], current: dict[str, Any] | None = None
) -> bool:
    """Whether a field belongs to what the form chose (``shown_when``: the console hides it otherwise, and a hidden
    input is not sent, even when the browser kept a value in it)."""
    show = f.get("shown_when") or {k: [v] for k, v in (f.get("required_when") or {}).items()}
    for control, wanted in show.items():
        if control == VARIANT:
            value = form.get(VARIANT) or entry["variants"][0]["id"]
        else:
            spec = next(c for c in entry["fields"] if c["name"] == control)
            value = _field_value(spec, form, current)
        if value not in wanted:
            return False
    return True


def install_body(entry: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """The admin API's install body of a submitted install form. Blank inputs, and inputs that do not belong to what
    the form chose, are left out (defaults apply)."""
    config: dict[str, Any] = {}
    for f in entry["fields"]:
        if not applies(f, entry, form):
            continue
        raw = form.get(f"config.{f['name']}", "")
        if raw.strip():
            config[f["name"]] = raw if f["type"] == "secret" else raw.strip()
    body: dict[str, Any] = {"name": form.get("name", ""), "config": config}
    if form.get("variant"):
        body["variant"] = form["variant"]
    if form.get("source_id"):
        body["source_id"] = form["source_id"]
    bp = blueprint_body(form)
    if bp:
        body["blueprint"] = bp
    if form.get(SKIP_CHECK):
        body["verify"] = False
    return body


def update_body(entry: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
    """The admin API's PATCH body of a submitted settings form: a blank secret keeps its value (unless removal was
    asked for), a blank setting is cleared (its default applies)."""
    config: dict[str, Any] = {}
    for f in entry["fields"]:
        name = f"config.{f['name']}"
        raw = form.get(name, "")
        if not applies(f, entry, form):
            config[f["name"]] = None  # no longer part of what the form chose: cleared
        elif f["type"] == "secret":
            if raw.strip():
                config[f["name"]] = raw
            elif form.get(f"{name}.remove"):
                config[f["name"]] = None
        else:
            config[f["name"]] = raw.strip() or None
    body: dict[str, Any] = {"name": form.get("name", ""), "config": config}
    bp = blueprint_body(form)
    if bp is not None:
        body["blueprint"] = bp  # the form shows the whole blueprint: it replaces the current one, as in the API
    if form.get(SKIP_CHECK):
        body["verify"] = False
    return body


def key_preview(fields: list[Field], variant: str) -> dict[str, Any]:
    """The example key the form's settings give the catalog's sample event this hour (``catalog.example_key``), or
    what stops it; the console.js keeps it current as the person types (``/integrations/key-preview``)."""
    shown = {f.name: f.value for f in fields}
    key, problem = catalog.example_key(
        prefix=shown.get("config.prefix", ""),
        partition_fields=shown.get("config.partition_fields", ""),
        date_layout=shown.get("config.date_layout", ""),
        variant=variant,
    )
    return {"key": key, "error": problem, "sample": catalog.SAMPLE_DESCRIPTION}
