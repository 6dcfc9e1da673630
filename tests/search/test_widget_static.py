"""The storefront widget's file, read as text: size budget, forbidden constructs, scoped styles, version.

No browser: tests/e2e/test_widget_contract.py runs the widget itself.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest

WIDGET = (
    Path(__file__).resolve().parents[2] / "search" / "static" / "lookalike-widget" / "v1" / "lookalike.js"
)
MAX_GZIP_BYTES = 15 * 1024
ROOT = "[data-lookalike-root]"


@pytest.fixture(scope="module")
def source() -> str:
    assert WIDGET.is_file(), f"{WIDGET} is missing"
    return WIDGET.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def css(source: str) -> str:
    found = re.findall(r"const CSS = `(.*?)`;", source, flags=re.DOTALL)
    assert len(found) == 1, "the widget must hold its stylesheet in exactly one `const CSS = `...`;` constant"
    assert "${" not in found[0], "the stylesheet constant must be plain text, not a template with ${}"
    return found[0]


def _rules(css: str) -> list[tuple[str, str]]:
    """(selector list, declarations) pairs of a flat stylesheet; nesting or at-rules fail the caller."""
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.DOTALL)
    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", css)
    leftover = re.sub(r"([^{}]+)\{([^{}]*)\}", "", css).strip()
    assert not leftover, f"text outside any rule (nesting or an at-rule?): {leftover[:80]!r}"
    return [(selectors.strip(), body) for selectors, body in rules]


def _split_selectors(group: str) -> list[str]:
    """Split on the commas that separate selectors, not the ones inside :where(...) or [attr=...]."""
    parts, depth, current = [], 0, ""
    for ch in group:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    parts.append(current.strip())
    return parts


def test_gzipped_size_is_within_budget(source: str) -> None:
    size = len(gzip.compress(source.encode("utf-8"), compresslevel=9))
    print(
        f"lookalike.js: {len(source.encode('utf-8'))} bytes, {size} bytes gzipped (budget {MAX_GZIP_BYTES})"
    )
    assert size <= MAX_GZIP_BYTES


@pytest.mark.parametrize(
    "pattern",
    [r"\beval\s*\(", r"new\s+Function\b", r"document\.write", r"\.innerHTML\b", r"\.outerHTML\b",
     r"insertAdjacentHTML", r"setAttribute\(\s*[\"']on", r"\.on\w+\s*=\s*[\"'`]", r"setTimeout\(\s*[\"'`]"],
)  # fmt: skip
def test_no_code_from_strings_and_no_markup_from_strings(source: str, pattern: str) -> None:
    # The widget builds every node with createElement/textContent, so shop data can never become markup
    # or code; none of these may appear even once.
    assert not re.search(pattern, source), f"lookalike.js matches the forbidden pattern {pattern!r}"


def test_every_selector_is_under_the_widget_root(css: str) -> None:
    rules = _rules(css)
    assert len(rules) >= 10, "the stylesheet constant was not parsed"
    for group, _ in rules:
        for selector in _split_selectors(group):
            assert selector.startswith(ROOT), f"selector {selector!r} could style the shop's page"
            rest = selector[len(ROOT) :]
            # Whatever follows the root must stay inside it: a descendant, or the root itself with more
            # conditions; never a sibling combinator that reaches the shop's elements next to the block.
            assert not re.match(r"\s*[~+]", rest), f"selector {selector!r} reaches outside the root"
            assert not re.search(r"(?<![\w-])(html|body|:root)\b", selector), selector


def test_theming_goes_through_documented_custom_properties(css: str) -> None:
    used = set(re.findall(r"var\((--[\w-]+)", css))
    assert used, "no custom properties: shops could not theme the widget"
    assert all(name.startswith("--lookalike-") for name in used), used
    docs = (Path(__file__).resolve().parents[2] / "docs" / "widget.md").read_text(encoding="utf-8")
    undocumented = sorted(name for name in used if name not in docs)
    assert not undocumented, f"custom properties missing from docs/widget.md: {undocumented}"


def test_version_is_exposed(source: str) -> None:
    match = re.search(r'const VERSION = "(\d+\.\d+\.\d+)";', source)
    assert match, "no VERSION constant"
    assert match.group(1).startswith("1."), "the /widget/v1/ file must carry a 1.x.y version"
    assert "version: VERSION" in source, "window.Lookalike.version is not set from VERSION"
