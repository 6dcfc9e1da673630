"""Files the package metadata and the README promise: the MIT license text, and the documents that
pyproject.toml and the README point at."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_license_file_is_the_mit_license_pyproject_declares() -> None:
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"] == "MIT"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 The Lookalike authors" in text
    assert "Permission is hereby granted, free of charge, to any person obtaining a copy" in text
    assert 'THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND' in text


def test_documents_pointed_at_exist() -> None:
    for source in ("pyproject.toml", "README.md", "docs/install.md"):
        for path in re.findall(r"\bdocs/[\w.-]+\.md\b", (ROOT / source).read_text()):
            assert (ROOT / path).is_file(), f"{source} points at {path}, which does not exist"


def test_install_notes_give_the_readme_commands() -> None:
    notes = (ROOT / "docs" / "install.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for command in ("bash scripts/demo.sh", "bash scripts/test.sh"):
        assert command in readme and command in notes


def test_the_search_services_package_lists_every_module() -> None:
    """search/services/__init__.py is the map of the app's writes: a module it does not name is one a
    reader will not find."""
    import search.services

    package = Path(search.services.__file__).parent
    listed = search.services.__doc__ or ""
    named = set(re.findall(r"(?<![\w.])(\w+\.py)\b", listed))
    missing = sorted(p.name for p in package.glob("*.py") if p.name != "__init__.py" and p.name not in named)
    assert missing == []
