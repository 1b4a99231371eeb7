"""The Athena table over an integration's objects."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import pytest

from workers.events.envelope import CANONICAL_ORDER
from workers.sink.athena import COLUMNS, athena_ddl, default_table_name, location_template, partition_names
from workers.sink.object_keys import object_key

INTEGRATION_ID = "3F2a9c1e-7b4d-4e8f-a1b2-c3d4e5f6a7b8"


@dataclass(frozen=True)
class Destination:
    bucket: str = "datafly-events-production"
    prefix: str = "events/"
    date_layout: str = "path"
    partition_time: str = "received_at"
    partition_time_bound_s: int = 7 * 86_400


EXPECTED_WITH_PREFIX = """\
CREATE EXTERNAL TABLE IF NOT EXISTS `default`.`signal_events_3f2a9c1e` (
  `event_id`       string,
  `type`           string,
  `event`          string,
  `name`           string,
  `anonymous_id`   string,
  `user_id`        string,
  `group_id`       string,
  `previous_id`    string,
  `timestamp`      string,
  `received_at`    string,
  `sent_at`        string,
  `context`        string,
  `properties`     string,
  `traits`         string,
  `source_id`      string,
  `integration_id` string
)
PARTITIONED BY (
  `year` string,
  `month` string,
  `day` string,
  `hour` string
)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://datafly-events-production/events/'
TBLPROPERTIES (
  'projection.enabled'='true',
  'projection.year.type'='integer',
  'projection.year.range'='2020,2099',
  'projection.year.digits'='4',
  'projection.month.type'='integer',
  'projection.month.range'='01,12',
  'projection.month.digits'='2',
  'projection.day.type'='integer',
  'projection.day.range'='01,31',
  'projection.day.digits'='2',
  'projection.hour.type'='integer',
  'projection.hour.range'='00,23',
  'projection.hour.digits'='2',
  'storage.location.template'='s3://datafly-events-production/events/${year}/${month}/${day}/${hour}/'
);
"""


def test_ddl_with_a_prefix() -> None:
    assert athena_ddl(INTEGRATION_ID, Destination()) == EXPECTED_WITH_PREFIX


def test_parquet_ddl_reads_the_parquet_schema() -> None:
    ddl = athena_ddl(INTEGRATION_ID, Destination(), variant="parquet")
    head, tail = EXPECTED_WITH_PREFIX.split("PARTITIONED BY")
    assert ddl.startswith(
        head.replace("  `timestamp`      string,", "  `timestamp`      timestamp,")
        .replace("  `received_at`    string,", "  `received_at`    timestamp,")
        .replace("  `sent_at`        string,", "  `sent_at`        timestamp,")
        .replace("  `integration_id` string\n", "  `integration_id` string,\n  `extra`          string\n")
    )
    assert "STORED AS PARQUET\nLOCATION 's3://datafly-events-production/events/'\n" in ddl
    assert "SERDE" not in ddl and "INPUTFORMAT" not in ddl
    assert ddl.endswith(tail.split("LOCATION", 1)[1])  # the same location and partition projection
    with pytest.raises(ValueError, match="variant"):
        athena_ddl(INTEGRATION_ID, Destination(), variant="orc")


def test_ddl_without_a_prefix_points_at_the_bucket_root() -> None:
    ddl = athena_ddl(INTEGRATION_ID, Destination(prefix=""))
    assert "LOCATION 's3://datafly-events-production/'\n" in ddl
    assert "'storage.location.template'='s3://datafly-events-production/${year}/${month}/${day}/${hour}/'" in ddl


def test_nested_prefix() -> None:
    ddl = athena_ddl(INTEGRATION_ID, Destination(prefix="a/b-c/"))
    assert "LOCATION 's3://datafly-events-production/a/b-c/'\n" in ddl
    assert "'s3://datafly-events-production/a/b-c/${year}/${month}/${day}/${hour}/'" in ddl


def test_columns_are_the_canonical_envelope_in_order() -> None:
    assert [name for name, _ in COLUMNS] == list(CANONICAL_ORDER)
    assert {kind for _, kind in COLUMNS} == {"string"}


def test_every_identifier_is_backquoted() -> None:
    ddl = athena_ddl(INTEGRATION_ID, Destination())
    column_lines = re.findall(r"^  (\S+) +string,?$", ddl, flags=re.MULTILINE)
    assert len(column_lines) == len(COLUMNS) + 4
    assert all(re.fullmatch(r"`[a-z_]+`", name) for name in column_lines)
    assert "`timestamp`" in ddl and "`default`.`signal_events_3f2a9c1e`" in ddl


def test_table_and_database_can_be_chosen() -> None:
    ddl = athena_ddl(INTEGRATION_ID, Destination(), table="web_events", database="analytics")
    assert ddl.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `analytics`.`web_events` (\n")


@pytest.mark.parametrize(
    ("integration_id", "table"),
    [
        ("3F2a9c1e-7b4d-4e8f-a1b2-c3d4e5f6a7b8", "signal_events_3f2a9c1e"),
        ("ab-cd.ef/gh-more", "signal_events_ab_cd_ef"),
        ("short", "signal_events_short"),
        ("Ünïcode-id", "signal_events__n_code_"),
    ],
)
def test_default_table_name(integration_id: str, table: str) -> None:
    assert default_table_name(integration_id) == table


@pytest.mark.parametrize("name", ["", "Events", "my-table", "a`b", "x" * 256, "events;drop"])
def test_bad_table_or_database_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="table"):
        athena_ddl(INTEGRATION_ID, Destination(), table=name)
    with pytest.raises(ValueError, match="database"):
        athena_ddl(INTEGRATION_ID, Destination(), database=name)


def test_empty_integration_id_is_refused() -> None:
    with pytest.raises(ValueError, match="integration_id"):
        athena_ddl("", Destination())


@pytest.mark.parametrize("prefix", ["it's/", "a${year}/", "back\\slash/", 'q"/', "tick`/"])
def test_prefixes_a_location_cannot_hold_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        athena_ddl(INTEGRATION_ID, Destination(prefix=prefix))


def fill(template: str, year: str, month: str, day: str, hour: str) -> str:
    return template.replace("${year}", year).replace("${month}", month).replace("${day}", day).replace("${hour}", hour)


@pytest.mark.parametrize("prefix", ["", "events/", "a/b/c/", "with space/"])
@pytest.mark.parametrize("hour", ["2026112509", "2026010100", "2099123123", "2020022923"])
@pytest.mark.parametrize(("variant", "suffix"), [("default", ".json.gz"), ("parquet", ".parquet")])
def test_location_template_matches_the_object_key_layout(prefix: str, hour: str, variant: str, suffix: str) -> None:
    cfg = Destination(prefix=prefix)
    batch_id = str(uuid.uuid4())
    year, month, day, hh = hour[0:4], hour[4:6], hour[6:8], hour[8:10]
    folder = fill(location_template(cfg), year, month, day, hh)
    url = f"s3://{cfg.bucket}/{object_key(prefix, hour, batch_id, variant)}"
    assert url.startswith(folder)
    assert url[len(folder) :] == f"{batch_id}{suffix}"


def test_projection_ranges_cover_every_component_of_a_key() -> None:
    ddl = athena_ddl(INTEGRATION_ID, Destination())
    ranges = dict(re.findall(r"'projection\.(\w+)\.range'='([0-9,]+)'", ddl))
    digits = dict(re.findall(r"'projection\.(\w+)\.digits'='([0-9]+)'", ddl))
    assert digits == {"year": "4", "month": "2", "day": "2", "hour": "2"}
    key = object_key("", "2026112509", str(uuid.uuid4()))
    values = dict(zip(["year", "month", "day", "hour"], key.split("/")[:4], strict=True))
    for name, value in values.items():
        low, high = ranges[name].split(",")
        assert len(value) == int(digits[name])
        assert int(low) <= int(value) <= int(high)


def hive_fill(template: str, dt: str, hr: str) -> str:
    return template.replace("${dt}", dt).replace("${hr}", hr)


@pytest.mark.parametrize("prefix", ["", "events/", "with space/"])
@pytest.mark.parametrize("hour", ["2026112509", "2020010100", "2099123123"])
@pytest.mark.parametrize(("variant", "suffix"), [("default", ".json.gz"), ("parquet", ".parquet")])
def test_the_hive_layout_template_matches_its_keys(prefix: str, hour: str, variant: str, suffix: str) -> None:
    cfg = Destination(prefix=prefix, date_layout="hive")
    batch_id = str(uuid.uuid4())
    folder = hive_fill(location_template(cfg), f"{hour[0:4]}-{hour[4:6]}-{hour[6:8]}", hour[8:10])
    url = f"s3://{cfg.bucket}/{object_key(prefix, hour, batch_id, variant, 'hive')}"
    assert url == f"{folder}{batch_id}{suffix}"
    assert folder.endswith(f"/dt={hour[0:4]}-{hour[4:6]}-{hour[6:8]}/hr={hour[8:10]}/")


def test_the_hive_layout_projects_a_date_and_an_hour() -> None:
    ddl = athena_ddl(INTEGRATION_ID, Destination(date_layout="hive"), variant="parquet")
    assert "PARTITIONED BY (\n  `dt` string,\n  `hr` string\n)" in ddl
    properties = dict(re.findall(r"'([\w.]+)'='([^']*)'", ddl))
    assert properties["projection.dt.type"] == "date"
    assert properties["projection.dt.format"] == "yyyy-MM-dd"
    assert properties["projection.dt.range"] == "2020-01-01,NOW+1DAYS"  # a day of clock skew
    assert (properties["projection.dt.interval"], properties["projection.dt.interval.unit"]) == ("1", "DAYS")
    assert (properties["projection.hr.type"], properties["projection.hr.range"]) == ("integer", "00,23")
    assert properties["projection.hr.digits"] == "2"
    assert properties["storage.location.template"] == "s3://datafly-events-production/events/dt=${dt}/hr=${hr}/"
    assert "projection.year.type" not in properties
    assert partition_names("hive") == ("dt", "hr") and partition_names("path") == ("year", "month", "day", "hour")
    with pytest.raises(ValueError, match="date_layout"):
        partition_names("flat")


def test_dt_reaches_as_far_ahead_as_a_timestamp_can_be_partitioned() -> None:
    def dt_range(**cfg: object) -> str:
        ddl = athena_ddl(INTEGRATION_ID, Destination(date_layout="hive", **cfg))  # type: ignore[arg-type]
        return dict(re.findall(r"'([\w.]+)'='([^']*)'", ddl))["projection.dt.range"]

    assert dt_range(partition_time="timestamp", partition_time_bound_s=7 * 86_400) == "2020-01-01,NOW+8DAYS"
    assert dt_range(partition_time="timestamp", partition_time_bound_s=3_600) == "2020-01-01,NOW+2DAYS"
    assert dt_range(partition_time="received_at", partition_time_bound_s=366 * 86_400) == "2020-01-01,NOW+1DAYS"
