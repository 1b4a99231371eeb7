"""``signal-s3 iceberg show ID`` and ``signal-s3 iceberg maintain ID``: the table of an iceberg integration."""

from __future__ import annotations

import argparse

from workers.cli import common
from workers.cli.common import EXIT_FAILED, EXIT_OK, Command, id_argument, print_json
from workers.pipeline import tables
from workers.settings import get_settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="the table: catalog, location, current snapshot, recent snapshots, queries")
    id_argument(show)
    run = sub.add_parser(
        "maintain", help="compact closed hours, expire old snapshots, remove orphan files (as beat does)"
    )
    id_argument(run)
    run.add_argument(
        "--closed-after-hours",
        type=int,
        default=tables.CLOSED_AFTER_HOURS,
        help=f"compact hours that ended at least this many hours ago (default {tables.CLOSED_AFTER_HOURS}; "
        "0: every hour but the current one)",
    )


def cmd_iceberg(args: argparse.Namespace) -> int:
    r = common.redis_client()
    if args.action == "show":
        view = tables.table_view(r, args.id, settings=get_settings())
        print_json(view)
        return EXIT_FAILED if "error" in view else EXIT_OK
    report = tables.run_maintenance(
        r, args.id, settings=get_settings(), closed_after_hours=max(args.closed_after_hours, 0)
    )
    print_json(report)
    return EXIT_FAILED if report["errors"] else EXIT_OK


COMMANDS: tuple[Command, ...] = (
    Command(
        "iceberg",
        "the Iceberg table of an iceberg integration: show it, or run its maintenance",
        cmd_iceberg,
        _arguments,
    ),
)
