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
