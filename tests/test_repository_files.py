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
