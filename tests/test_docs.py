"""The docs a newcomer reads: every relative link and #anchor resolves, and the operators reference covers the code."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from airflow_ml_provider import get_provider_info

PROJECT = Path(__file__).resolve().parents[1]
PAGES = [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _prose(path: Path) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    headings = [line.lstrip("#").strip() for line in _prose(path) if re.match(r"#{1,6} ", line)]
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    broken = []
    for line in _prose(page):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{target}: no such file")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)


def test_operators_reference_names_every_operator_and_its_templated_fields() -> None:
    from airflow.sdk import BaseOperator

    reference = (PROJECT / "docs" / "operators-and-hooks.md").read_text()
    modules = [m for entry in get_provider_info()["operators"] for m in entry["python-modules"]]
    operators = [
        cls
        for module in map(importlib.import_module, modules)
        for cls in vars(module).values()
        if inspect.isclass(cls) and issubclass(cls, BaseOperator) and cls.__module__ == module.__name__
    ]
    assert len(operators) == 8
    for cls in operators:
        assert f"### {cls.__name__}" in reference
        assert f"`{cls.__module__}.{cls.__name__}`" in reference
        section = reference.split(f"### {cls.__name__}", 1)[1].split("\n### ", 1)[0]
        arguments = inspect.signature(cls.__init__).parameters
        for field in (f for f in cls.template_fields if f in arguments):  # the subject is built, not passed
            assert f"`{field}`" in section, f"{cls.__name__}: templated field {field} is not documented"
