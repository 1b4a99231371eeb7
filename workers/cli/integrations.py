"""``signal-s3`` commands on integrations: install, list, show, update, enable, disable, status, live, dead-letter,
test, athena-ddl, iam-policy."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tqdm import tqdm

from workers.cli import common
from workers.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    INTEGRATION_TYPE,
    Command,
    fail,
    file_option,
    id_argument,
    print_json,
    read_json,
)
from workers.errors import ConfigError
from workers.integrations import manage, registry, status
from workers.pipeline import replay
from workers.settings import get_settings
from workers.sink import athena
from workers.store import buffer


def _install_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("integration_type", metavar="TYPE", help=f"integration type ({INTEGRATION_TYPE})")
    file_option(parser, 'the install body: {"name", "variant", "config", "delivery_mode"}')


def _update_arguments(parser: argparse.ArgumentParser) -> None:
    id_argument(parser)
    file_option(
        parser,
        'the new config and/or blueprint: a config object, or {"config": {...}, '
        '"blueprint": {...}} with either or both',
    )


def cmd_install(args: argparse.Namespace) -> int:
    if args.integration_type != INTEGRATION_TYPE:
        return fail(
            f"unknown integration type {args.integration_type!r}; the only type is {INTEGRATION_TYPE}", EXIT_INVALID
        )
    body = read_json(args.file)
    try:
        integration = manage.install_integration(common.redis_client(), body, settings=get_settings())
    except manage.BucketCheckFailed as exc:
        f = exc.failure
        print_json({"error": "bucket_check_failed", "code": f.code, "message": f.message, "hint": f.hint})
        return fail(f"the bucket check failed ({f.code}); nothing was installed", EXIT_FAILED)
    print_json(integration.public())
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    print_json([integration.public() for integration in registry.list_all(common.redis_client())])
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    print_json(registry.get(common.redis_client(), args.id).public())
    return EXIT_OK


_UPDATE_PARTS = ("config", "blueprint")


def _parts_of(document: Any) -> dict[str, Any]:
    """``{"config": ..., "blueprint": ...}`` (either or both) of an update document; a bare config object is the
    config."""
    if isinstance(document, dict) and any(part in document for part in _UPDATE_PARTS):
        others = sorted(str(key) for key in document if key not in _UPDATE_PARTS)
        if others:
            raise ConfigError(
                [
                    {
                        "field": others[0],
                        "message": "update replaces only the config and the blueprint; "
                        'give a config object or {"config": {...}, "blueprint": {...}}',
                    }
                ]
            )
        return {part: document[part] for part in _UPDATE_PARTS if part in document}
    return {"config": document}


def cmd_update(args: argparse.Namespace) -> int:
    """The config replaces the whole config (not merged, unlike the API's PATCH); the bucket is not checked."""
    body = {**_parts_of(read_json(args.file)), "verify": False}
    print_json(
        manage.update_integration(common.redis_client(), args.id, body, settings=get_settings(), merge=False).public()
    )
    return EXIT_OK


def cmd_enable(args: argparse.Namespace) -> int:
    print_json(registry.set_enabled(common.redis_client(), args.id, True).public())
    return EXIT_OK


def cmd_disable(args: argparse.Namespace) -> int:
    print_json(registry.set_enabled(common.redis_client(), args.id, False).public())
    return EXIT_OK


def _dead_letter_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="show the held batches of an integration, with their error and hint")
    id_argument(listing)
    again = sub.add_parser("replay", help="re-upload held batches after the cause was fixed")
    id_argument(again)
    again.add_argument("--batch", metavar="BATCH", help="replay only this batch")


def cmd_dead_letter(args: argparse.Namespace) -> int:
    r = common.redis_client()
    registry.get(r, args.id)
    if args.action == "list":
        print_json(status.dead_letter(r, args.id))
        return EXIT_OK
    held = buffer.held_batches(r, args.id)
    total = 1 if args.batch else len(held)
    with tqdm(total=total, unit="batch", desc="replay", file=sys.stderr, disable=total == 0) as bar:
        try:
            report = replay.replay(
                r, args.id, settings=get_settings(), batch_id=args.batch, on_progress=lambda _b, _s: bar.update(1)
            )
        except LookupError as exc:
            return fail(str(exc), EXIT_FAILED)
    print_json(report.summary())
    return EXIT_FAILED if report.failed else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    print_json(status.integration_status(common.redis_client(), args.id))
    return EXIT_OK


def _live_arguments(parser: argparse.ArgumentParser) -> None:
    id_argument(parser)
    parser.add_argument("--limit", type=int, default=20, help="how many recent events (default 20, at most 100)")


def cmd_live(args: argparse.Namespace) -> int:
    print_json(status.live_events(common.redis_client(), args.id, limit=min(max(args.limit, 1), 100)))
    return EXIT_OK


def _athena_arguments(parser: argparse.ArgumentParser) -> None:
    id_argument(parser)
    parser.add_argument("--table", help="table name (default signal_events_<id>)")
    parser.add_argument("--database", default="default", help="Glue/Athena database (default: default)")


def cmd_athena_ddl(args: argparse.Namespace) -> int:
    integration = registry.get(common.redis_client(), args.id)
    try:
        ddl = athena.athena_ddl(
            integration.id,
            integration.config,
            table=args.table,
            database=args.database,
            variant=integration.variant,
            fields=integration.config.partition_by,
        )
    except ValueError as exc:
        return fail(str(exc), EXIT_INVALID)
    sys.stdout.write(ddl.rstrip("\n") + "\n")
    return EXIT_OK


def cmd_iam_policy(args: argparse.Namespace) -> int:
    """The permissions policy; for a role also its trust policy: ``{"permissions_policy", "trust_policy"}``."""
    policies = manage.access_policies(registry.get(common.redis_client(), args.id), settings=get_settings())
    print_json(policies if "trust_policy" in policies else policies["permissions_policy"])
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """Every step an upload takes, each ok or failed with its hint; exit 1 when a step failed."""
    report = manage.check_connection(common.redis_client(), args.id, settings=get_settings())
    print_json(report)
    return EXIT_OK if report["ok"] else EXIT_FAILED


def _test_arguments(parser: argparse.ArgumentParser) -> None:
    id_argument(parser)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for delivery (default 30)")


def cmd_test(args: argparse.Namespace) -> int:
    from workers.queue.producer import Broker

    settings = get_settings()
    broker = Broker(settings)
    try:
        code, result = manage.run_test_event(
            common.redis_client(), broker, args.id, settings=settings, timeout_s=max(args.timeout, 1.0)
        )
    finally:
        broker.close()
    print_json(result)
    return EXIT_OK if code == 200 else EXIT_FAILED


COMMANDS: tuple[Command, ...] = (
    Command(
        "install", f"install an integration ({INTEGRATION_TYPE}) from a JSON body", cmd_install, _install_arguments
    ),
    Command("list", "list installed integrations", cmd_list),
    Command("show", "show one integration", cmd_show, id_argument),
    Command("update", "replace the config and/or the blueprint of an integration", cmd_update, _update_arguments),
    Command("enable", "enable an integration", cmd_enable, id_argument),
    Command("disable", "disable an integration", cmd_disable, id_argument),
    Command("status", "delivery status: buffered, delivered, retrying, held, last error", cmd_status, id_argument),
    Command(
        "live",
        "the most recent events and their state: buffered, delivered (object key), failed (code)",
        cmd_live,
        _live_arguments,
    ),
    Command(
        "dead-letter", "list or replay batches held after a permanent failure", cmd_dead_letter, _dead_letter_arguments
    ),
    Command(
        "athena-ddl",
        "print a CREATE EXTERNAL TABLE (partition projection) for the objects",
        cmd_athena_ddl,
        _athena_arguments,
    ),
    Command(
        "iam-policy",
        "print the least-privilege IAM policy for the integration (with a role: its trust policy too)",
        cmd_iam_policy,
        id_argument,
    ),
    Command(
        "check",
        "check the connection: credentials, bucket and region, Object Lock, a test object written",
        cmd_check,
        id_argument,
    ),
    Command(
        "test", "send a test event through the fleet and print where it landed (or why not)", cmd_test, _test_arguments
    ),
)
