"""The one table of error codes: every code the apps can raise has a status, and each kind of error
(domain errors, rejected images, DRF's own) comes out in the one error shape."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from rest_framework import exceptions

from catalog.errors import CatalogError
from config.api_errors import ERRORS, exception_handler, image_error
from ml.preprocess import ImageRejected
from search.errors import SearchError
from search.jobs.registry import JobError
from search.services.reindex import ReindexError

REPO = Path(__file__).resolve().parents[2]
APPS = ("apikeys", "catalog", "search", "workers", "config")
# The errors that carry a code, and where: (position, keyword). A subclass found in the apps joins
# them when its __init__ hands one of its own parameters on as the code; one that hands on a literal
# (``super().__init__("job_refused", message)``) raises that code.
CODE_CARRIERS: dict[str, tuple[int | None, str]] = {
    "CatalogError": (0, "code"),
    "SearchError": (0, "code"),
    "ApiKeyError": (0, "code"),
    # DRF's exceptions, raised with a code of ours (``PermissionDenied(..., code="insufficient_scope")``).
    "PermissionDenied": (None, "code"),
    "AuthenticationFailed": (None, "code"),
}
_NOT_CODES = {"get", "post", "put", "patch", "delete"}


def _name(node: ast.expr) -> str | None:
    return getattr(node, "id", getattr(node, "attr", None))


def _strings(expr: ast.expr | None, scope: ast.AST | None) -> set[str]:
    """The string literals an expression can evaluate to: a literal, either side of ``a if c else b``,
    or a local name's assigned values in ``scope`` (``code = "x" if ... else "y"; raise E(code)``)."""
    if expr is None:
        return set()
    if isinstance(expr, ast.Constant):
        return {expr.value} if isinstance(expr.value, str) else set()
    if isinstance(expr, ast.IfExp):
        return _strings(expr.body, scope) | _strings(expr.orelse, scope)
    if isinstance(expr, ast.BoolOp):
        return set().union(*(_strings(v, scope) for v in expr.values))
    if isinstance(expr, ast.Name) and scope is not None:
        found: set[str] = set()
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign) and any(_name(t) == expr.id for t in node.targets):
                found |= _strings(node.value, None)
        return found
    return set()


def _argument(call: ast.Call, position: int | None, keyword: str) -> ast.expr | None:
    for k in call.keywords:
        if k.arg == keyword:
            return k.value
    if position is not None and len(call.args) > position:
        return call.args[position]
    return None


def _super_init(init: ast.FunctionDef) -> ast.Call | None:
    """The ``super().__init__(...)`` (or ``Base.__init__(self, ...)``) call in an __init__."""
    for node in ast.walk(init):
        if isinstance(node, ast.Call) and _name(node.func) == "__init__":
            return node
    return None


def _trees() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for app in APPS for path in (REPO / app).rglob("*.py")]


def _carriers_and_fixed_codes(trees: list[ast.Module]) -> tuple[dict[str, tuple[int | None, str]], set[str]]:
    """CODE_CARRIERS plus the apps' subclasses that pass a code through, and the codes subclasses fix
    in their ``super().__init__``. Repeated until nothing changes, for subclasses of subclasses."""
    carriers = dict(CODE_CARRIERS)
    fixed: set[str] = set()
    classes = [n for tree in trees for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    changed = True
    while changed:
        changed = False
        for cls in classes:
            if cls.name in carriers:
                continue
            base = next((_name(b) for b in cls.bases if _name(b) in carriers), None)
            if base is None:
                continue
            init = next(
                (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None
            )
            if init is None:  # inherits the base's signature, code and all
                carriers[cls.name] = carriers[base]
                changed = True
                continue
            call = _super_init(init)
            if call is None:
                continue
            position, keyword = carriers[base]
            if call.args and _name(call.args[0]) == "self":  # Base.__init__(self, ...)
                position = None if position is None else position + 1
            passed = _argument(call, position, keyword)
            params = [a.arg for a in init.args.args[1:]]
            if isinstance(passed, ast.Name) and passed.id in params:
                carriers[cls.name] = (params.index(passed.id), passed.id)
                changed = True
            else:
                codes = _strings(passed, init)
                if codes - fixed:
                    fixed |= codes
                    changed = True
    return carriers, fixed


def _raised_codes() -> set[str]:
    """Every code the apps can raise, however it is passed: the code argument of each call to an error
    that carries one (positional or ``code=``, a literal, a conditional or a local name), the codes
    subclasses hand to ``super().__init__``, and every code a view declares in ``error_codes``."""
    parsed = _trees()
    carriers, codes = _carriers_and_fixed_codes([tree for _, tree in parsed])
    for _, tree in parsed:
        functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) in carriers:
                position, keyword = carriers[_name(node.func)]
                scope = next(
                    (f for f in functions if f.lineno <= node.lineno <= (f.end_lineno or f.lineno)),
                    None,
                )
                codes |= _strings(_argument(node, position, keyword), scope)
            if isinstance(node, ast.Assign) and any(_name(t) == "error_codes" for t in node.targets):
                codes.update(
                    c.value
                    for c in ast.walk(node.value)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                )
    return codes - _NOT_CODES


def test_the_guard_finds_codes_however_they_are_passed() -> None:
    """The finder itself: a code handed to super().__init__, one passed through a subclass's own
    parameter, a conditional one and a keyword one are all found."""
    source = """
class Refused(SearchError):
    def __init__(self, message):
        super().__init__("fixed_code", message)

class Passing(SearchError):
    def __init__(self, message, code):
        super().__init__(code, message)

def f(x):
    code = "local_a" if x else "local_b"
    raise Passing("message", "passed_code") if x else SearchError(code, "m")

def g():
    raise Passing(code="keyword_code", message="m")
"""
    tree = ast.parse(source)
    carriers, fixed = _carriers_and_fixed_codes([tree])
    assert fixed == {"fixed_code"}
    assert carriers["Passing"] == (1, "code")
    assert "Refused" not in carriers
    found = set()
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _name(node.func) in carriers:
            scope = next(f for f in functions if f.lineno <= node.lineno <= f.end_lineno)
            found |= _strings(_argument(node, *carriers[_name(node.func)]), scope)
    assert found == {"passed_code", "local_a", "local_b", "keyword_code"}


def test_every_code_in_the_apps_has_a_status() -> None:
    codes = _raised_codes()
    assert {"duplicate_sku", "product_not_found", "not_indexed", "model_unavailable"} <= codes
    missing = sorted(codes - set(ERRORS))
    assert missing == [], f"codes without a row in config/api_errors.ERRORS: {missing}"


@pytest.mark.parametrize(
    ("exc", "status", "body"),
    [
        (
            CatalogError("duplicate_sku", "A product with sku 'X' already exists.", "sku"),
            409,
            {
                "code": "duplicate_sku",
                "message": "A product with sku 'X' already exists.",
                "fields": {"sku": ["A product with sku 'X' already exists."]},
            },
        ),
        (
            SearchError("model_unavailable", "No model."),
            503,
            {"code": "model_unavailable", "message": "No model."},
        ),
        (
            JobError("No job 7.", "job_id"),
            400,
            {"code": "job_refused", "message": "No job 7.", "fields": {"job_id": ["No job 7."]}},
        ),
        (
            ReindexError("Model v2 is already active."),
            409,
            {"code": "reindex_refused", "message": "Model v2 is already active."},
        ),
        (
            ImageRejected("image_too_large", "Too big."),
            413,
            {"code": "image_too_large", "message": "Too big.", "fields": {"image": ["Too big."]}},
        ),
        (
            ImageRejected("corrupt_image", "Broken."),
            400,
            {
                "code": "invalid_image",
                "message": "Broken. (corrupt_image)",
                "fields": {"image": ["Broken. (corrupt_image)"]},
            },
        ),
        (
            ImageRejected("invalid_crop", "Outside."),
            400,
            {"code": "invalid_parameter", "message": "Outside.", "fields": {"crop": ["Outside."]}},
        ),
        (
            exceptions.NotAuthenticated(),
            401,
            {"code": "not_authenticated", "message": "Authentication credentials were not provided."},
        ),
    ],
)
def test_errors_come_out_in_one_shape(exc, status, body) -> None:
    response = exception_handler(exc, {})
    assert response.status_code == status
    assert response.data == {"error": body}


def test_image_rejections_map_the_same_for_every_endpoint() -> None:
    assert image_error(ImageRejected("too_many_pixels", "Huge.")) == (
        "invalid_image",
        "Huge. (too_many_pixels)",
        "image",
    )
