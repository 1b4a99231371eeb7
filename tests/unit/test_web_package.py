"""The console's templates and static files ship inside the package (a non-editable install serves them too)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "workers" / "web"


def test_every_template_and_static_file_is_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["workers.web"]
    shipped = [p for p in [*WEB.glob("templates/*"), *WEB.glob("static/*")] if p.is_file()]
    assert len(shipped) >= 20
    for path in shipped:
        relative = path.relative_to(WEB).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


def test_templates_hold_no_inline_script_style_or_handler_and_fetch_nothing_from_elsewhere():
    for path in WEB.glob("templates/*.html"):
        text = path.read_text()
        assert "<script>" not in text and "<style" not in text, path.name
        assert " style=" not in text, path.name  # style-src 'self' would block it
        for attr in ("onclick", "onload", "onerror", "onsubmit", "onchange", "javascript:"):
            assert attr not in text.lower(), (path.name, attr)
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, path.name
    css = (WEB / "static" / "console.css").read_text()
    assert "@import" not in css and "http" not in css


def test_the_http_face_stays_one_small_module_per_face():
    assert not (ROOT / "workers" / "api.py").exists()
    for path in WEB.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, f"{path.name}: split it, one concept per module"


def test_the_readme_shows_the_console_with_screenshots_that_exist():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Console", 1)[1].split("\n## ", 1)[0]
    for words in (
        "Sign in",
        "Integration Library",
        "Install Integration",
        "Live Events",
        "Dead letter",
        "Sources",
        "Fleet",
        "Query & access",
    ):
        assert words in section, words
    images = [line.split("](", 1)[1].split(")", 1)[0] for line in section.splitlines() if line.startswith("![")]
    images += [part.split('"', 1)[0] for part in section.split('<img src="')[1:]]
    assert len(images) >= 2
    for image in images:
        assert (ROOT / image).is_file() and (ROOT / image).stat().st_size < 200_000, image
