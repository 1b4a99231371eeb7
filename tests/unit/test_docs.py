"""The manual holds together: every relative link and image of README.md and docs/ resolves to a file, README.md stays
a landing page, and the code paths the manual names exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|<img[^>]+src=\"([^\"]+)\"")
GENERATED = {"bench/results.json"}  # written by make bench, not kept in git
CODE_PATH = re.compile(r"`((?:workers|tasks|tests|deploy|bench)/[A-Za-z0-9_./-]+)`")


def links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # code blocks hold no links
    return [m.group(1) or m.group(2) for m in LINK.finditer(text)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # another site, or an anchor of this page
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to missing files: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_code_path_the_manual_names_exists(page: Path):
    named = set(CODE_PATH.findall(page.read_text())) - GENERATED
    missing = sorted(p for p in named if not (ROOT / p.rstrip("/")).exists())
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_the_readme_is_a_landing_page_and_the_manual_has_its_pages():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 300
    assert len(list((ROOT / "docs").rglob("*.md"))) >= 5
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
