"""What every ``signal-s3`` command shares: exit codes, the Redis client, JSON in and out, argument helpers."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis

from workers.errors import InvalidInput
from workers.integrations import catalog
from workers.settings import get_settings
from workers.store import db

INTEGRATION_TYPE = catalog.INTEGRATION_TYPE

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2


class InputError(InvalidInput):
    """The user's input could not be read or parsed (exit 2)."""


def redis_client() -> redis.Redis:
    return db.connect(get_settings())


def redis_location(url: str) -> str:
    """Host, port and database of a Redis URL without any password in it."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = parts.port or 6379
    except ValueError:
        return "the configured SIGNAL_REDIS_URL"
    return f"{host}:{port}{parts.path or ''}"


def print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode("utf-8") + "\n")
    sys.stdout.flush()


def fail(message: str, code: int) -> int:
    sys.stderr.write(f"signal-s3: {message}\n")
    sys.stderr.flush()
    return code


def read_json(path: str | None) -> Any:
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


@dataclasses.dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None


def id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="integration id")


def file_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--file", "-f", metavar="PATH", help=f"JSON file with {what} (default: read stdin)")
