"""The pinned browser SDKs: downloaded with the standard library, checked against the pinned sha512, cached, and
laid out for self-hosting. A tiny local registry stands in for npm here; the browser tests use the real packages."""

from __future__ import annotations

import io
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from workers.websites import sdk


def make_tarball(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


TARBALL = make_tarball(
    {
        "package/package.json": b"{}",
        "package/dist/umd/index.js": b"window.Fake = 1;",
        "package/dist/umd/42.bundle.abc.js": b"chunk",
        "package/dist/umd/index.js.map": b"map",
        "package/dist/umd/sub/x.bundle.y.js": b"nested",
        "package/dist/umd/../../../evil.bundle.x.js": b"escape",
    }
)
FAKE = sdk.Package(
    key="fake",
    name="@scope/fake",
    version="1.2.3",
    integrity=sdk.integrity_of(TARBALL),
    files=(("package/dist/umd/index.js", "fake/bundles"), ("package/dist/umd/*.bundle.*.js", "fake/bundles")),
    script="fake/bundles/index.js",
)


class Registry:
    def __init__(self) -> None:
        self.body = TARBALL
        self.paths: list[str] = []


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[Registry]:
    state = Registry()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{server.server_port}/")
    yield state
    server.shutdown()
    server.server_close()


def test_downloads_once_checks_and_lays_out_only_the_browser_files(registry: Registry, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    scripts = sdk.install(tmp_path / "sdk", (FAKE,), cache_dir=cache)
    assert scripts == {"fake": tmp_path / "sdk" / "fake/bundles/index.js"}
    assert registry.paths == ["/@scope/fake/-/fake-1.2.3.tgz"]  # npm's tarball path
    files = sorted(str(p.relative_to(tmp_path / "sdk")) for p in (tmp_path / "sdk").rglob("*") if p.is_file())
    assert files == ["fake/bundles/42.bundle.abc.js", "fake/bundles/index.js"]  # no map, nothing nested or outside
    assert not (tmp_path / "evil.bundle.x.js").exists()
    sdk.install(tmp_path / "again", (FAKE,), cache_dir=cache)
    assert len(registry.paths) == 1  # from the cache


def test_a_tarball_that_is_not_the_pinned_one_is_refused_and_not_cached(registry: Registry, tmp_path: Path) -> None:
    registry.body = make_tarball({"package/dist/umd/index.js": b"window.Tampered = 1;"})
    with pytest.raises(sdk.SdkFetchError, match="does not match the pinned integrity"):
        sdk.install(tmp_path / "sdk", (FAKE,), cache_dir=tmp_path / "cache")
    assert not (tmp_path / "sdk").exists()
    assert not list((tmp_path / "cache").glob("*"))


def test_a_corrupt_cache_entry_is_fetched_again(registry: Registry, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    sdk.tarball(FAKE, cache)
    (entry,) = cache.glob("*.tgz")
    entry.write_bytes(b"garbage")
    assert sdk.tarball(FAKE, cache) == TARBALL
    assert len(registry.paths) == 2 and entry.read_bytes() == TARBALL


def test_an_unreachable_registry_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.support.processes import free_port

    monkeypatch.setenv("npm_config_registry", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(sdk.SdkFetchError, match=r"cannot download @scope/fake@1.2.3 from http://127\.0\.0\.1"):
        sdk.tarball(FAKE, tmp_path)


def test_the_real_packages_are_pinned_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("npm_config_registry", raising=False)
    for package in sdk.PACKAGES:
        assert package.version.count(".") == 2 and package.version.replace(".", "").isdigit()
        assert package.integrity.startswith("sha512-") and len(package.integrity) == 95
    assert sdk.RUDDERSTACK.tarball_url == (
        "https://registry.npmjs.org/@rudderstack/analytics-js/-/analytics-js-3.34.1.tgz"
    )
    assert [p.key for p in sdk.PACKAGES] == ["analytics-next", "rudderstack"]
