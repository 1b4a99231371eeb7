"""``signal-s3``: install and manage Amazon S3 integrations from the command line.

Exit codes: 0 success, 1 a runtime problem (unknown integration, Redis unreachable, secret key problem, a failed
bucket check or test event), 2 invalid input (bad arguments, malformed JSON, validation errors printed as
``{"errors": [...]}`` on stdout). The commands are in ``integrations``, ``iceberg``, ``sources`` and ``fleet``
beside this module. Secrets are never printed: integrations are shown through ``Integration.public()``.
``install`` checks the bucket (GetBucketLocation) before storing anything, like the API, unless the body says
``"verify": false``.
"""

from __future__ import annotations

import argparse
import sys

import redis

from workers import crypto
from workers.cli import fleet, iceberg, integrations, sources
from workers.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    Command,
    InputError,
    fail,
    print_json,
    redis_location,
)
from workers.errors import ConfigError
from workers.integrations import registry
from workers.integrations.sources import UnknownSource
from workers.queue.producer import BrokerUnavailable
from workers.settings import get_settings

COMMANDS: dict[str, Command] = {
    command.name: command for command in (*integrations.COMMANDS, *iceberg.COMMANDS, *sources.COMMANDS, *fleet.COMMANDS)
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signal-s3", description="Manage Amazon S3 integrations.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS.values():
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_INVALID
    try:
        return int(args.run(args))
    except InputError as exc:
        return fail(str(exc), EXIT_INVALID)
    except ConfigError as exc:
        print_json({"errors": exc.errors})
        return EXIT_INVALID
    except (registry.UnknownIntegration, UnknownSource) as exc:
        return fail(str(exc), EXIT_FAILED)
    except (crypto.SecretKeyMissing, crypto.SecretKeyInvalid, crypto.SecretKeyMismatch) as exc:
        return fail(str(exc), EXIT_FAILED)
    except redis.RedisError as exc:
        location = redis_location(get_settings().redis_url)
        return fail(f"Redis at {location} failed: {exc}", EXIT_FAILED)
    except BrokerUnavailable as exc:
        return fail(f"{exc}; nothing was queued, try again once the broker is up", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
