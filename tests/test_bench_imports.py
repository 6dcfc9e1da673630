"""The benchmarks import what they need inside main() (TensorFlow and Django load only when a
benchmark runs), so a name moved elsewhere breaks one only when someone runs it. This reads every
``from X import Y`` in bench/ and checks that Y is still there, without running anything."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _imports() -> list[tuple[str, str, str]]:
    found = []
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                root = node.module.split(".")[0]
                if root in {"bench", "ml", "search", "catalog", "workers", "apikeys", "config"}:
                    found += [(path.name, node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize(("bench_file", "module", "name"), _imports())
def test_every_name_a_benchmark_imports_exists(bench_file: str, module: str, name: str) -> None:
    imported = importlib.import_module(module)
    assert hasattr(imported, name) or importlib.util.find_spec(f"{module}.{name}") is not None, (
        f"bench/{bench_file}: from {module} import {name}: no such name"
    )
