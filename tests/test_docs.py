"""The documentation stays a front page and a site, not a log: cheap checks of README.md, docs/ and
mkdocs.yml (the site itself is built by `make docs`, which .ci/run runs)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# "stop 3", "Stop 12:" ...: a work log's wording, which belongs to no page a user opens
DIARY = re.compile(r"\bstop [0-9]", re.IGNORECASE)


def nav_pages(entries: Any) -> list[str]:
    """Every page file named in a mkdocs nav (nested sections included)."""
    if isinstance(entries, str):
        return [entries]
    if isinstance(entries, list):
        return [page for entry in entries for page in nav_pages(entry)]
    if isinstance(entries, dict):
        return [page for value in entries.values() for page in nav_pages(value)]
    return []


def mkdocs_config() -> dict[str, Any]:
    # mkdocs.yml may hold !!python/name tags (mkdocs-material's emoji settings); none are needed here
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)


def test_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) < 300, f"README.md has {len(lines)} lines; move detail into docs/"
    text = "\n".join(lines)
    assert "make demo" in text and "make test" in text, "the quickstart commands left the README"


@pytest.mark.parametrize("path", [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))], ids=lambda p: p.name)
def test_no_work_log_wording(path: Path) -> None:
    lines = path.read_text().splitlines()
    found = [f"line {n}: {line.strip()}" for n, line in enumerate(lines, 1) if DIARY.search(line)]
    assert not found, f"{path.relative_to(ROOT)} reads like a log: {found[:3]}"


def test_every_docs_page_is_in_the_nav() -> None:
    listed = set(nav_pages(mkdocs_config()["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - listed == set(), f"pages missing from mkdocs.yml's nav: {sorted(pages - listed)}"
    assert listed - pages == set(), f"mkdocs.yml's nav names pages that do not exist: {sorted(listed - pages)}"


def test_nav_pages_finds_nested_sections() -> None:
    nav = [{"Home": "index.md"}, {"Guides": [{"A": "a.md"}, {"Deeper": [{"B": "b/c.md"}]}]}, "d.md"]
    assert nav_pages(nav) == ["index.md", "a.md", "b/c.md", "d.md"]
