"""``signal-s3`` commands that run or operate the fleet: api, metrics, queues, copy-store, keygen, reencrypt."""

from __future__ import annotations

import argparse
import sys

import redis
from kombu.exceptions import OperationalError

from workers import crypto
from workers.cli import common
from workers.cli.common import EXIT_FAILED, EXIT_OK, Command, fail, print_json
from workers.integrations import registry
from workers.queue import topology
from workers.settings import get_settings


def _api_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default SIGNAL_API_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default SIGNAL_API_PORT, 8084)")
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        metavar="N",
        help="API processes sharing the port (default 1; about one per CPU)",
    )


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


def cmd_queues(args: argparse.Namespace) -> int:
    """Messages waiting in each queue; on RabbitMQ also those held in signal.dead-letter (past the delivery limit)."""
    try:
        print_json(topology.queue_depths(get_settings()))
    except OperationalError as exc:
        return fail(f"cannot read the queues: {exc}", EXIT_FAILED)
    return EXIT_OK


def _copy_store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="REDIS_URL",
        help="the Redis the stopped fleet used (its SIGNAL_REDIS_URL); the copy goes to SIGNAL_REDIS_URL",
    )


def cmd_copy_store(args: argparse.Namespace) -> int:
    from workers.store import migrate

    source = redis.Redis.from_url(args.source)
    try:
        report = migrate.copy_store(
            source, common.redis_client(), broker=migrate.BrokerKeys(*topology.redis_broker_keys())
        )
    except migrate.NotDrained as exc:
        return fail(f"nothing was copied: {exc}", EXIT_FAILED)
    finally:
        source.close()
    print_json(report.summary())
    return EXIT_OK


def cmd_keygen(args: argparse.Namespace) -> int:
    sys.stdout.write(crypto.generate_key() + "\n")
    return EXIT_OK


def cmd_reencrypt(args: argparse.Namespace) -> int:
    count = registry.reencrypt(common.redis_client())
    print_json({"reencrypted": count})
    return EXIT_OK


def _metrics_arguments(parser: argparse.ArgumentParser) -> None:
    from workers.observe import metrics

    parser.add_argument(
        "--host", default=metrics.DEFAULT_HOST, help=f"address to bind (default {metrics.DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port", type=int, default=metrics.DEFAULT_PORT, help=f"port to bind (default {metrics.DEFAULT_PORT})"
    )


def cmd_metrics(args: argparse.Namespace) -> int:
    from workers.observe import metrics

    def ready(url: str) -> None:
        sys.stderr.write(f"signal-s3: serving Prometheus metrics on {url}\n")
        sys.stderr.flush()

    try:
        metrics.serve(common.redis_client(), host=args.host, port=args.port, on_ready=ready)
    except OSError as exc:
        return fail(f"cannot serve metrics on {args.host}:{args.port}: {exc.strerror or exc}", EXIT_FAILED)
    return EXIT_OK


COMMANDS: tuple[Command, ...] = (
    Command("api", "run the HTTP API (admin routes and Segment-compatible collection)", cmd_api, _api_arguments),
    Command("metrics", "serve the fleet's Prometheus metrics over HTTP (/metrics)", cmd_metrics, _metrics_arguments),
    Command(
        "queues", "messages waiting in each broker queue (and, on RabbitMQ, held in signal.dead-letter)", cmd_queues
    ),
    Command(
        "copy-store",
        "copy the store of a drained, stopped fleet into SIGNAL_REDIS_URL (e.g. a Redis Cluster)",
        cmd_copy_store,
        _copy_store_arguments,
    ),
    Command("keygen", "print a new key for SIGNAL_SECRET_KEY", cmd_keygen),
    Command(
        "reencrypt",
        "re-encrypt stored secrets with the first SIGNAL_SECRET_KEY (after putting a new key first)",
        cmd_reencrypt,
    ),
)
