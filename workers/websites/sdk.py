"""The browser SDKs a website loads, pinned: fetched from the npm registry, checked, laid out for self-hosting.

Each package is pinned to an exact version and its registry ``dist.integrity`` (sha512 of the tarball), downloaded
with the standard library (no Node or npm needed), verified, cached under ``~/.cache/signal-s3/npm`` (never in the
repository), and its prebuilt browser files are written under an SDK directory in the layout the snippets expect
(``workers.websites.snippet``):

  analytics-next/bundles/index.js (+ its lazily loaded *.bundle.*.js chunks)
      @segment/analytics-next, package/dist/umd/: the UMD build (global ``AnalyticsNext``); analytics.js loads its
      chunks from ``<window.analytics._cdn>/analytics-next/bundles/``, so the snippet points ``_cdn`` at the SDK
      directory and nothing comes from cdn.segment.com.
  rudderstack/rsa.js
      @rudderstack/analytics-js, package/dist/npm/modern/bundled/umd/index.js: RudderStack's v3 SDK with every
      plugin bundled (global ``rudderanalytics``), so it loads no plugin from RudderStack's CDN.

``signal-s3 sdk-files DIR`` writes them for a website to serve; ``make run``'s demo site and the browser tests use
the same files. ``npm_config_registry`` (npm's own variable) points at a registry mirror.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import io
import os
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from workers.errors import Unavailable

REGISTRY = "https://registry.npmjs.org"
DOWNLOAD_TIMEOUT_S = 60.0


class SdkFetchError(Unavailable):
    """A pinned SDK could not be downloaded, or what came is not what was pinned."""


@dataclass(frozen=True)
class Package:
    key: str  # how the snippets name it
    name: str  # npm package name
    version: str
    integrity: str  # the registry's dist.integrity: "sha512-<base64>"
    files: tuple[tuple[str, str], ...]  # (glob inside the tarball, directory under the SDK dir)
    script: str  # the file a page loads, under the SDK dir

    @property
    def tarball_url(self) -> str:
        registry = (os.environ.get("npm_config_registry") or REGISTRY).rstrip("/")
        return f"{registry}/{self.name}/-/{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"


ANALYTICS_NEXT = Package(
    key="analytics-next",
    name="@segment/analytics-next",
    version="1.84.3",
    integrity="sha512-5l7cPBzScxhfJ0zdcKQI4daDvMIWWUk7hClT1xGRelnHUltIEoQ9w8+ZpFPoWJMpX8D7IA1nVAfJbpiKi3XaKw==",
    files=(
        ("package/dist/umd/index.js", "analytics-next/bundles"),
        ("package/dist/umd/*.bundle.*.js", "analytics-next/bundles"),
    ),
    script="analytics-next/bundles/index.js",
)
RUDDERSTACK = Package(
    key="rudderstack",
    name="@rudderstack/analytics-js",
    version="3.34.1",
    integrity="sha512-cci768CvaM64Wr/MDDtLF8K49aPy7TwwfwL9G1a2SSfgwL4XfVfGNVT//Mv8yph0a14pPc/Nf5HDWhVjAD5vQg==",
    files=(("package/dist/npm/modern/bundled/umd/index.js", "rudderstack/rsa.js"),),
    script="rudderstack/rsa.js",
)
PACKAGES: tuple[Package, ...] = (ANALYTICS_NEXT, RUDDERSTACK)


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "signal-s3" / "npm"


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def tarball(package: Package, cache_dir: Path | None = None) -> bytes:
    """The package's tarball, from the cache or the registry; SdkFetchError unless its sha512 is the pinned one."""
    cache = (cache_dir or default_cache_dir()) / f"{package.name.replace('/', '+')}-{package.version}.tgz"
    if cache.exists():
        data = cache.read_bytes()
        if integrity_of(data) == package.integrity:
            return data
        cache.unlink()  # corrupt or tampered with: fetch it again
    try:
        with urllib.request.urlopen(package.tarball_url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            data = response.read()
    except OSError as exc:
        raise SdkFetchError(
            f"cannot download {package.name}@{package.version} from {package.tarball_url}: {exc}"
        ) from None
    if integrity_of(data) != package.integrity:
        raise SdkFetchError(
            f"{package.tarball_url} does not match the pinned integrity of "
            f"{package.name}@{package.version}; refusing to use it"
        )
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(data)
    partial.replace(cache)
    return data


def install(dest: Path, packages: tuple[Package, ...] = PACKAGES, cache_dir: Path | None = None) -> dict[str, Path]:
    """Write each package's browser files under ``dest``; returns {package key: the script a page loads}."""
    scripts = {}
    for package in packages:
        written = 0
        with tarfile.open(fileobj=io.BytesIO(tarball(package, cache_dir)), mode="r:gz") as archive:
            for member in archive.getmembers():
                target = _target(package, member.name)
                if target is None or not member.isfile():
                    continue
                source = archive.extractfile(member)
                assert source is not None
                path = dest / target
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(source.read())
                written += 1
        script = dest / package.script
        if not written or not script.is_file():
            raise SdkFetchError(f"{package.name}@{package.version} has no {package.script}")
        scripts[package.key] = script
    return scripts


def _target(package: Package, member: str) -> str | None:
    """Where a tarball member goes under the SDK dir (a name of ours: nothing from the archive picks a path)."""
    for pattern, where in package.files:
        if fnmatch.fnmatchcase(member, pattern) and "/" not in member[len(pattern.rsplit("/", 1)[0]) + 1 :]:
            return where if where.endswith(".js") else f"{where}/{member.rsplit('/', 1)[-1]}"
    return None
