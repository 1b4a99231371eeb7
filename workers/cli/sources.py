"""``signal-s3`` commands for websites and other senders: sources (write keys, settings, snippets) and sdk-files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workers.cli import common
from workers.cli.common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    Command,
    fail,
    print_json,
)
from workers.integrations import sources
from workers.settings import get_settings
from workers.websites import sdk, snippet


def _source_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--allowed-origins",
        metavar="LIST",
        help="comma-separated origins that may send from a browser (https://www.example.com, "
        "*.example.com); '' allows any",
    )
    parser.add_argument(
        "--rate-limit",
        metavar="EPS",
        help="events per second for this source; 0: no limit; 'default': SIGNAL_SOURCE_RATE_LIMIT_EPS",
    )


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
    snippet_parser = sub.add_parser(
        "snippet",
        help="print the <script> setup that sends a website's events to this source (analytics.js and RudderStack JS)",
    )
    snippet_parser.add_argument("id", help="source id")
    snippet_parser.add_argument(
        "--api-url",
        help="the collection API's public address (default "
        "SIGNAL_PUBLIC_API_URL, else http://SIGNAL_API_HOST:SIGNAL_API_PORT)",
    )
    snippet_parser.add_argument(
        "--sdk-url",
        default=snippet.DEFAULT_SDK_BASE_URL,
        help=f"where the site serves the files of `signal-s3 sdk-files` (default {snippet.DEFAULT_SDK_BASE_URL})",
    )
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
    r = common.redis_client()
    settings = get_settings()
    if args.action == "create":
        source = sources.create_from(r, {"name": args.name, **_settings_body(args)})
        print_json(sources.view(r, source, settings))
    elif args.action == "list":
        print_json([sources.view(r, s, settings) for s in sources.list_all(r)])
    elif args.action == "show":
        print_json(sources.view(r, sources.get(r, args.id), settings))
    elif args.action == "update":
        body = _settings_body(args)
        if not body:
            return fail("nothing to change: give --name, --allowed-origins or --rate-limit", EXIT_INVALID)
        print_json(sources.view(r, sources.update(r, args.id, body), settings))
    else:
        source = sources.get(r, args.id)
        try:
            found = snippet.for_source(
                source.id, source.write_key, api_url=args.api_url or settings.collection_url, sdk_base_url=args.sdk_url
            )
        except ValueError as exc:
            return fail(str(exc), EXIT_INVALID)
        for item in found:
            if args.sdk in (None, item.sdk):
                sys.stdout.write(
                    f"<!-- {item.title}: serve {item.sdk_files} "
                    "(`signal-s3 sdk-files DIR` writes them) -->\n" + item.html + "\n"
                )
    return EXIT_OK


def _sdk_files_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="directory the website serves at the snippet's --sdk-url (e.g. its /signal-sdk)")


def cmd_sdk_files(args: argparse.Namespace) -> int:
    from pathlib import Path

    try:
        written = sdk.install(Path(args.dir))
    except sdk.SdkFetchError as exc:
        return fail(str(exc), EXIT_FAILED)
    print_json(
        {
            package.key: {
                "package": f"{package.name}@{package.version}",
                "integrity": package.integrity,
                "script": str(written[package.key]),
            }
            for package in sdk.PACKAGES
        }
    )
    return EXIT_OK


COMMANDS: tuple[Command, ...] = (
    Command(
        "sources",
        "create, list, show or change sources (each with the write key its events are sent with) "
        "and print a website's snippet",
        cmd_sources,
        _sources_arguments,
    ),
    Command(
        "sdk-files",
        "write the pinned browser SDK files (analytics.js, RudderStack JS) for a website to serve",
        cmd_sdk_files,
        _sdk_files_arguments,
    ),
)
