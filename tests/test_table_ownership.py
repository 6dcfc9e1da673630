"""Each app writes only its own tables: the catalog's rows change through catalog/services, the search
app's through search/services, and so on. This reads every module of the project's apps (no code
runs) and fails where one app's code writes another app's model through its manager: a
``<Model>.objects...`` chain, or a name assigned from one, ending in a write (``update``, ``create``,
``bulk_update``, ``delete``...). The import-linter contracts in pyproject.toml keep the same rule at
the import level where they can express it (the catalog never imports search; search's indexing
modules never import catalog.models).

Not seen here: ``instance.save()`` and writes through related managers (``product.images.update``);
the services are the only place such calls belong, and review catches the rest."""

from __future__ import annotations

import ast
import importlib
from dataclasses import dataclass
from pathlib import Path

from django.db.models import Model

ROOT = Path(__file__).resolve().parents[1]
# The apps whose code is read; each owns the tables of the models its app label names.
APPS = ("catalog", "search", "workers", "apikeys", "config")
WRITES = frozenset(
    {
        "update",
        "create",
        "bulk_create",
        "bulk_update",
        "delete",
        "get_or_create",
        "update_or_create",
    }
)


@dataclass(frozen=True)
class Write:
    path: str
    line: int
    model: str
    method: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.model}.objects...{self.method}()"


def _foreign_models(tree: ast.Module, app: str) -> dict[str, str]:
    """Names this module binds to another app's model classes (``from catalog.models import X``)."""
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ImportFrom) and node.module and node.level == 0):
            continue
        if node.module.split(".")[0] not in APPS:
            continue
        module = importlib.import_module(node.module)
        for alias in node.names:
            value = getattr(module, alias.name, None)
            if isinstance(value, type) and issubclass(value, Model) and value._meta.app_label != app:
                found[alias.asname or alias.name] = f"{value._meta.app_label}.{value.__name__}"
    return found


def _root(node: ast.expr) -> tuple[str | None, bool]:
    """The name a chain like ``X.objects.filter(...).exclude(...)`` starts at, and whether it passes
    through ``.objects``."""
    through_manager = False
    while True:
        if isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Attribute):
            through_manager = through_manager or node.attr == "objects"
            node = node.value
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Name):
            return node.id, through_manager
        else:
            return None, through_manager


def _writes_in(path: Path, app: str) -> list[Write]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    models = _foreign_models(tree, app)
    if not models:
        return []
    # Names assigned a queryset of a foreign model (``due = X.objects.filter(...)``), anywhere in the
    # module: a later ``due.update(...)`` is a write too.
    querysets: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, through_manager = _root(node.value)
            if name in models and through_manager:
                querysets[node.targets[0].id] = models[name]
    found = []
    relative = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in WRITES:
            continue
        name, through_manager = _root(node.func.value)
        if name in models and through_manager:
            found.append(Write(relative, node.lineno, models[name], node.func.attr))
        elif name in querysets:
            found.append(Write(relative, node.lineno, querysets[name], node.func.attr))
    return found


def _modules(app: str) -> list[Path]:
    return [p for p in sorted((ROOT / app).rglob("*.py")) if "migrations" not in p.parts]


def test_no_app_writes_another_apps_tables() -> None:
    writes = [w for app in APPS for path in _modules(app) for w in _writes_in(path, app)]
    assert not writes, "writes to another app's tables (call that app's services instead):\n" + "\n".join(
        map(str, writes)
    )


def test_the_check_sees_a_write(tmp_path: Path) -> None:
    # The check itself: a search module updating catalog rows, directly and through a named queryset.
    module = tmp_path / "probe.py"
    module.write_text(
        "from catalog.models import ProductImage as Image\n"
        "def f(ids):\n"
        "    Image.objects.filter(pk__in=ids).update(last_error='')\n"
        "    rows = Image.objects.filter(pk__in=ids)\n"
        "    rows.delete()\n",
        encoding="utf-8",
    )
    found = _writes_in(module, "search")
    assert [(w.line, w.model, w.method) for w in found] == [
        (3, "catalog.ProductImage", "update"),
        (5, "catalog.ProductImage", "delete"),
    ]
