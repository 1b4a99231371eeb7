"""``signal-s3``: install and manage Amazon S3 integrations from the command line.

Exit codes: 0 success, 1 a runtime problem (unknown integration, Redis unreachable, secret key problem, a failed
bucket check or test event), 2 invalid input (bad arguments, malformed JSON, validation errors printed as ``{"errors": [...]}`` on stdout).
Secrets are never printed: integrations are shown through ``Integration.public()``. ``install`` checks the bucket
(GetBucketLocation) before storing anything, like the API, unless the body says ``"verify": false``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis
from kombu.exceptions import OperationalError
from tqdm import tqdm

from workers import (athena, buffer, catalog, crypto, db, delivery, iam, manage, registry, snippet, sources, status,
                     topology, websdk)
from workers.broker import BrokerUnavailable
from workers.config import ConfigError
from workers.settings import get_settings

INTEGRATION_TYPE = catalog.INTEGRATION_TYPE

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


class InputError(Exception):
    """The user's input could not be read or parsed (exit 2)."""


def redis_client() -> redis.Redis:
    return db.connect(get_settings())


def _redis_location(url: str) -> str:
    """Host, port and database of a Redis URL without any password in it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port or 6379
    except ValueError:
        return "the configured SIGNAL_REDIS_URL"
    return f"{host}:{port}{parts.path or ''}"


# -- output -----------------------------------------------------------------------------------------------------


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode("utf-8") + "\n")
    sys.stdout.flush()


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"signal-s3: {message}\n")
    sys.stderr.flush()
    return code


def _read_json(path: str | None) -> Any:
    source = "stdin" if path in (None, "-") else path
    try:
        if path in (None, "-"):
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{source} is not UTF-8 text") from None
    if not text.strip():
        raise InputError(f"{source} is empty; expected a JSON object")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{source} is not valid JSON: {exc}") from None


# -- commands ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None


def _integration_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="integration id")


def _file_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--file", "-f", metavar="PATH", help=f"JSON file with {what} (default: read stdin)")


def _install_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("integration_type", metavar="TYPE", help=f"integration type ({INTEGRATION_TYPE})")
    _file_option(parser, 'the install body: {"name", "variant", "config", "delivery_mode"}')


def _update_arguments(parser: argparse.ArgumentParser) -> None:
    _integration_id(parser)
    _file_option(parser, 'the new config and/or blueprint: a config object, or {"config": {...}, '
                         '"blueprint": {...}} with either or both')


def cmd_install(args: argparse.Namespace) -> int:
    if args.integration_type != INTEGRATION_TYPE:
        return _fail(
            f"unknown integration type {args.integration_type!r}; the only type is {INTEGRATION_TYPE}", EXIT_INVALID
        )
    body = _read_json(args.file)
    try:
        integration = manage.install_integration(redis_client(), body, settings=get_settings())
    except manage.BucketCheckFailed as exc:
        f = exc.failure
        _print_json({"error": "bucket_check_failed", "code": f.code, "message": f.message, "hint": f.hint})
        return _fail(f"the bucket check failed ({f.code}); nothing was installed", EXIT_FAILED)
    _print_json(integration.public())
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    _print_json([integration.public() for integration in registry.list_all(redis_client())])
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    _print_json(registry.get(redis_client(), args.id).public())
    return EXIT_OK


_UPDATE_PARTS = ("config", "blueprint")


def _parts_of(document: Any) -> dict[str, Any]:
    """``{"config": ..., "blueprint": ...}`` (either or both) of an update document; a bare config object is the
    config."""
    if isinstance(document, dict) and any(part in document for part in _UPDATE_PARTS):
        others = sorted(str(key) for key in document if key not in _UPDATE_PARTS)
        if others:
            raise ConfigError([{"field": others[0], "message": "update replaces only the config and the blueprint; "
                                'give a config object or {"config": {...}, "blueprint": {...}}'}])
        return {part: document[part] for part in _UPDATE_PARTS if part in document}
    return {"config": document}


def cmd_update(args: argparse.Namespace) -> int:
    """The config replaces the whole config (not merged, unlike the API's PATCH); the bucket is not checked."""
    body = {**_parts_of(_read_json(args.file)), "verify": False}
    _print_json(manage.update_integration(redis_client(), args.id, body, settings=get_settings(), merge=False)
                .public())
    return EXIT_OK


def cmd_enable(args: argparse.Namespace) -> int:
    _print_json(registry.set_enabled(redis_client(), args.id, True).public())
    return EXIT_OK


def cmd_disable(args: argparse.Namespace) -> int:
    _print_json(registry.set_enabled(redis_client(), args.id, False).public())
    return EXIT_OK


def _dead_letter_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="show the held batches of an integration, with their error and hint")
    _integration_id(listing)
    again = sub.add_parser("replay", help="re-upload held batches after the cause was fixed")
    _integration_id(again)
    again.add_argument("--batch", metavar="BATCH", help="replay only this batch")


def cmd_dead_letter(args: argparse.Namespace) -> int:
    r = redis_client()
    registry.get(r, args.id)
    if args.action == "list":
        _print_json(status.dead_letter(r, args.id))
        return EXIT_OK
    held = buffer.held_batches(r, args.id)
    total = 1 if args.batch else len(held)
    with tqdm(total=total, unit="batch", desc="replay", file=sys.stderr, disable=total == 0) as bar:
        try:
            report = delivery.replay(r, args.id, settings=get_settings(), batch_id=args.batch,
                                     on_progress=lambda _b, _s: bar.update(1))
        except LookupError as exc:
            return _fail(str(exc), EXIT_FAILED)
    _print_json(report.summary())
    return EXIT_FAILED if report.failed else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    _print_json(status.integration_status(redis_client(), args.id))
    return EXIT_OK


def _live_arguments(parser: argparse.ArgumentParser) -> None:
    _integration_id(parser)
    parser.add_argument("--limit", type=int, default=20, help="how many recent events (default 20, at most 100)")


def cmd_live(args: argparse.Namespace) -> int:
    _print_json(status.live_events(redis_client(), args.id, limit=min(max(args.limit, 1), 100)))
    return EXIT_OK


def _athena_arguments(parser: argparse.ArgumentParser) -> None:
    _integration_id(parser)
    parser.add_argument("--table", help="table name (default signal_events_<id>)")
    parser.add_argument("--database", default="default", help="Glue/Athena database (default: default)")


def cmd_athena_ddl(args: argparse.Namespace) -> int:
    integration = registry.get(redis_client(), args.id)
    try:
        ddl = athena.athena_ddl(integration.id, integration.config, table=args.table, database=args.database,
                                variant=integration.variant)
    except ValueError as exc:
        return _fail(str(exc), EXIT_INVALID)
    sys.stdout.write(ddl.rstrip("\n") + "\n")
    return EXIT_OK


def cmd_iam_policy(args: argparse.Namespace) -> int:
    _print_json(iam.iam_policy(registry.get(redis_client(), args.id).config))
    return EXIT_OK


def _api_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default SIGNAL_API_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default SIGNAL_API_PORT, 8084)")
    parser.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                        help="API processes sharing the port (default 1; about one per CPU)")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def cmd_api(args: argparse.Namespace) -> int:
    from workers.web.app import serve

    serve(args.host, args.port, args.workers)
    return EXIT_OK


def _test_arguments(parser: argparse.ArgumentParser) -> None:
    _integration_id(parser)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for delivery (default 30)")


def cmd_test(args: argparse.Namespace) -> int:
    from workers.broker import Broker

    settings = get_settings()
    broker = Broker(settings)
    try:
        code, result = manage.run_test_event(redis_client(), broker, args.id, settings=settings,
                                          timeout_s=max(args.timeout, 1.0))
    finally:
        broker.close()
    _print_json(result)
    return EXIT_OK if code == 200 else EXIT_FAILED


def cmd_queues(args: argparse.Namespace) -> int:
    """Messages waiting in each queue; on RabbitMQ also those held in signal.dead-letter (past the delivery limit)."""
    try:
        _print_json(topology.queue_depths(get_settings()))
    except OperationalError as exc:
        return _fail(f"cannot read the queues: {exc}", EXIT_FAILED)
    return EXIT_OK


def _copy_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True, metavar="REDIS_URL",
                        help="the Redis the stopped fleet used (its SIGNAL_REDIS_URL); the copy goes to "
                             "SIGNAL_REDIS_URL")


def cmd_copy_store(args: argparse.Namespace) -> int:
    from workers import migrate

    source = redis.Redis.from_url(args.source)
    try:
        report = migrate.copy_store(source, redis_client())
    except migrate.NotDrained as exc:
        return _fail(f"nothing was copied: {exc}", EXIT_FAILED)
    finally:
        source.close()
    _print_json(report.summary())
    return EXIT_OK


def _source_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--allowed-origins", metavar="LIST",
                        help="comma-separated origins that may send from a browser (https://www.example.com, "
                             "*.example.com); '' allows any")
    parser.add_argument("--rate-limit", metavar="EPS",
                        help="events per second for this source; 0: no limit; 'default': SIGNAL_SOURCE_RATE_LIMIT_EPS")


def _sources_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = sub.add_parser("create", help="create a source and print its write key")
    create.add_argument("name", help="source name")
    _source_settings_options(create)
    sub.add_parser("list", help="list sources with their write keys, settings and integrations")
    show = sub.add_parser("show", help="show one source with its settings and refused requests")
    show.add_argument("id", help="source id")
    update = sub.add_parser("update", help="change a source's name, allowed origins or rate limit")
    update.add_argument("id", help="source id")
    update.add_argument("--name", help="new name")
    _source_settings_options(update)
    snippet_parser = sub.add_parser("snippet", help="print the <script> setup that sends a website's events to this "
                                                    "source (analytics.js and RudderStack JS)")
    snippet_parser.add_argument("id", help="source id")
    snippet_parser.add_argument("--api-url", help="the collection API's public address (default "
                                                  "SIGNAL_PUBLIC_API_URL, else http://SIGNAL_API_HOST:SIGNAL_API_PORT)")
    snippet_parser.add_argument("--sdk-url", default=snippet.DEFAULT_SDK_BASE_URL,
                                help="where the site serves the files of `signal-s3 sdk-files` (default "
                                     f"{snippet.DEFAULT_SDK_BASE_URL})")
    snippet_parser.add_argument("--sdk", choices=["analytics-next", "rudderstack"], help="only this SDK's snippet")


def _settings_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if getattr(args, "name", None) is not None and args.action == "update":
        body["name"] = args.name
    if args.allowed_origins is not None:
        body["allowed_origins"] = [o.strip() for o in args.allowed_origins.split(",") if o.strip()]
    if args.rate_limit is not None:
        text = args.rate_limit.strip()
        body["rate_limit_eps"] = None if text == "default" else int(text) if text.isdigit() else text
    return body


def cmd_sources(args: argparse.Namespace) -> int:
    r = redis_client()
    settings = get_settings()
    if args.action == "create":
        source = sources.create_from(r, {"name": args.name, **_settings_body(args)})
        _print_json(sources.view(r, source, settings))
    elif args.action == "list":
        _print_json([sources.view(r, s, settings) for s in sources.list_all(r)])
    elif args.action == "show":
        _print_json(sources.view(r, sources.get(r, args.id), settings))
    elif args.action == "update":
        body = _settings_body(args)
        if not body:
            return _fail("nothing to change: give --name, --allowed-origins or --rate-limit", EXIT_INVALID)
        _print_json(sources.view(r, sources.update(r, args.id, body), settings))
    else:
        source = sources.get(r, args.id)
        try:
            found = snippet.for_source(source.id, source.write_key, api_url=args.api_url or settings.collection_url,
                                       sdk_base_url=args.sdk_url)
        except ValueError as exc:
            return _fail(str(exc), EXIT_INVALID)
        for item in found:
            if args.sdk in (None, item.sdk):
                sys.stdout.write(f"<!-- {item.title}: serve {item.sdk_files} "
                                 "(`signal-s3 sdk-files DIR` writes them) -->\n" + item.html + "\n")
    return EXIT_OK


def _sdk_files_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="directory the website serves at the snippet's --sdk-url (e.g. its /signal-sdk)")


def cmd_sdk_files(args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        written = websdk.install(Path(args.dir))
    except websdk.SdkFetchError as exc:
        return _fail(str(exc), EXIT_FAILED)
    _print_json({package.key: {"package": f"{package.name}@{package.version}", "integrity": package.integrity,
                               "script": str(written[package.key])} for package in websdk.PACKAGES})
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    sys.stdout.write(crypto.generate_key() + "\n")
    return EXIT_OK


def cmd_reencrypt(args: argparse.Namespace) -> int:
    count = registry.reencrypt(redis_client())
    _print_json({"reencrypted": count})
    return EXIT_OK


def _metrics_arguments(parser: argparse.ArgumentParser) -> None:
    from workers import metrics

    parser.add_argument("--host", default=metrics.DEFAULT_HOST,
                        help=f"address to bind (default {metrics.DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=metrics.DEFAULT_PORT,
                        help=f"port to bind (default {metrics.DEFAULT_PORT})")


def cmd_metrics(args: argparse.Namespace) -> int:
    from workers import metrics

    def ready(url: str) -> None:
        sys.stderr.write(f"signal-s3: serving Prometheus metrics on {url}\n")
        sys.stderr.flush()

    try:
        metrics.serve(redis_client(), host=args.host, port=args.port, on_ready=ready)
    except OSError as exc:
        return _fail(f"cannot serve metrics on {args.host}:{args.port}: {exc.strerror or exc}", EXIT_FAILED)
    return EXIT_OK


COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command(
            "install", f"install an integration ({INTEGRATION_TYPE}) from a JSON body", cmd_install, _install_arguments
        ),
        Command("list", "list installed integrations", cmd_list),
        Command("show", "show one integration", cmd_show, _integration_id),
        Command("update", "replace the config and/or the blueprint of an integration", cmd_update,
                _update_arguments),
        Command("enable", "enable an integration", cmd_enable, _integration_id),
        Command("disable", "disable an integration", cmd_disable, _integration_id),
        Command("status", "delivery status: buffered, delivered, retrying, held, last error", cmd_status,
                _integration_id),
        Command("live", "the most recent events and their state: buffered, delivered (object key), failed (code)",
                cmd_live, _live_arguments),
        Command("dead-letter", "list or replay batches held after a permanent failure", cmd_dead_letter,
                _dead_letter_arguments),
        Command("athena-ddl", "print a CREATE EXTERNAL TABLE (partition projection) for the objects", cmd_athena_ddl,
                _athena_arguments),
        Command("iam-policy", "print the least-privilege IAM policy for the integration", cmd_iam_policy,
                _integration_id),
        Command("test", "send a test event through the fleet and print where it landed (or why not)", cmd_test,
                _test_arguments),
        Command("queues", "messages waiting in each broker queue (and, on RabbitMQ, held in signal.dead-letter)",
                cmd_queues),
        Command("copy-store", "copy the store of a drained, stopped fleet into SIGNAL_REDIS_URL (e.g. a Redis Cluster)",
                cmd_copy_store, _copy_store_arguments),
        Command("sources", "create, list, show or change sources (each with the write key its events are sent with) "
                "and print a website's snippet", cmd_sources, _sources_arguments),
        Command("sdk-files", "write the pinned browser SDK files (analytics.js, RudderStack JS) for a website to serve",
                cmd_sdk_files, _sdk_files_arguments),
        Command("api", "run the HTTP API (admin routes and Segment-compatible collection)", cmd_api, _api_arguments),
        Command("metrics", "serve the fleet's Prometheus metrics over HTTP (/metrics)", cmd_metrics,
                _metrics_arguments),
        Command("keygen", "print a new key for SIGNAL_SECRET_KEY", cmd_keygen),
        Command(
            "reencrypt",
            "re-encrypt stored secrets with the first SIGNAL_SECRET_KEY (after putting a new key first)",
            cmd_reencrypt,
        ),
    )
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
        return _fail(str(exc), EXIT_INVALID)
    except ConfigError as exc:
        _print_json({"errors": exc.errors})
        return EXIT_INVALID
    except (registry.UnknownIntegration, sources.UnknownSource) as exc:
        return _fail(str(exc), EXIT_FAILED)
    except (crypto.SecretKeyMissing, crypto.SecretKeyInvalid, crypto.SecretKeyMismatch) as exc:
        return _fail(str(exc), EXIT_FAILED)
    except redis.RedisError as exc:
        location = _redis_location(get_settings().redis_url)
        return _fail(f"Redis at {location} failed: {exc}", EXIT_FAILED)
    except BrokerUnavailable as exc:
        return _fail(f"{exc}; nothing was queued, try again once the broker is up", EXIT_FAILED)


if __name__ == "__main__":
    sys.exit(main())
