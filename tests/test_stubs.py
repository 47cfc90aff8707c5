"""`_core.pyi` against the compiled bindings: every public class, function, method and
property of `crossrank._core` is in the stub with the same parameters (names, order,
kinds, defaults), the stub declares nothing the bindings lack, and every binding has a
docstring, so `help(crossrank.CrossEncoder.predict)` says what it does."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import crossrank._core as core

STUB = Path(core.__file__).with_name("_core.pyi")


def _stub_tree() -> dict[str, ast.AST]:
    """Top-level names of the stub: classes and functions (the last of overloads)."""
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    kinds = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {node.name: node for node in tree.body if isinstance(node, kinds)}


def _is_overload(fn: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "overload" for d in fn.decorator_list)


def _is_property(fn: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list)


def _stub_params(fn: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[tuple[str, str, object]]:
    """(name, kind, default) per parameter, without self; defaults evaluated as literals."""
    args = fn.args
    positional = args.posonlyargs + args.args
    defaults: list[object] = [inspect.Parameter.empty] * (len(positional) - len(args.defaults))
    defaults += [ast.literal_eval(d) for d in args.defaults]
    params = []
    for i, (arg, default) in enumerate(zip(positional, defaults)):
        kind = "positional_only" if i < len(args.posonlyargs) else "positional_or_keyword"
        params.append((arg.arg, kind, default))
    if args.vararg:
        params.append((args.vararg.arg, "var_positional", inspect.Parameter.empty))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        value = inspect.Parameter.empty if default is None else ast.literal_eval(default)
        params.append((arg.arg, "keyword_only", value))
    if args.kwarg:
        params.append((args.kwarg.arg, "var_keyword", inspect.Parameter.empty))
    if method:
        assert params and params[0][0] in ("self", "cls"), f"{fn.name}: first parameter is not self"
        params = params[1:]
    return params


def _runtime_params(obj: object) -> list[tuple[str, str, object]]:
    signature = inspect.signature(obj)
    params = []
    for p in signature.parameters.values():
        if p.name in ("self", "$self", "cls"):
            continue
        params.append((p.name, p.kind.name.lower(), p.default))
    return params


def _public(obj: object) -> list[str]:
    return sorted(n for n in vars(obj) if not n.startswith("_"))


def _runtime_items() -> list[tuple[str, object, str]]:
    """(qualified name, object, what) for everything the bindings expose."""
    items = []
    for name in sorted(n for n in dir(core) if not n.startswith("_")):
        obj = getattr(core, name)
        if inspect.isclass(obj):
            items.append((name, obj, "class"))
            for member in _public(obj):
                value = vars(obj)[member]
                what = "property" if inspect.isgetsetdescriptor(value) else "method"
                if isinstance(value, (staticmethod, classmethod)) or inspect.isbuiltin(value):
                    what = "static"
                items.append((f"{name}.{member}", value if what == "property" else getattr(obj, member), what))
        elif callable(obj):
            items.append((name, obj, "function"))
    return items


RUNTIME = _runtime_items()
STUBS = _stub_tree()


def _stub_for(qualified: str) -> ast.AST | None:
    head, _, member = qualified.partition(".")
    node = STUBS.get(head)
    if not member or node is None:
        return node
    assert isinstance(node, ast.ClassDef)
    found = None
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == member:
            found = item  # the last definition (after any overloads)
        elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.target.id == member:
            found = item
    return found


@pytest.mark.parametrize("qualified,obj,what", RUNTIME, ids=[q for q, _, _ in RUNTIME])
def test_binding_is_in_the_stub_with_the_same_signature(qualified, obj, what):
    node = _stub_for(qualified)
    assert node is not None, f"{qualified} is in the bindings but not in _core.pyi"
    if what == "property":
        assert isinstance(node, ast.AnnAssign) or (isinstance(node, ast.FunctionDef) and _is_property(node)), (
            f"{qualified} is a property in the bindings but not in the stub")
        return
    if what == "class":
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        if obj.__text_signature__ is None:
            assert init is None, f"{qualified} cannot be constructed from Python but the stub has __init__"
            return
        assert init is not None, f"{qualified} has a constructor but the stub has no __init__"
        fn, method = init, True
    else:
        assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)), f"{qualified} is not a function in the stub"
        # Static methods and functions have no self to drop.
        fn, method = node, what == "method"
    if _is_overload(fn):
        pytest.fail(f"{qualified}: the stub has only overloads; add the implementation signature last")
    assert _runtime_params(obj) == _stub_params(fn, method), f"{qualified}: binding and stub differ"


@pytest.mark.parametrize("qualified,obj,what", RUNTIME, ids=[q for q, _, _ in RUNTIME])
def test_binding_has_a_docstring(qualified, obj, what):
    doc = inspect.getdoc(obj) or ""
    # pyo3 prefixes the text signature; a docstring is what follows it.
    text = doc.split("--\n", 1)[-1].strip() if "--\n" in doc else doc.strip()
    assert text, f"{qualified} has no docstring (a /// comment on the pyo3 item)"


def test_stub_declares_nothing_the_bindings_lack():
    runtime = {q for q, _, _ in RUNTIME}
    declared = set()
    for name, node in STUBS.items():
        if name.startswith("_"):
            continue
        declared.add(name)
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    declared.add(f"{name}.{item.name}")
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    if not item.target.id.startswith("_"):
                        declared.add(f"{name}.{item.target.id}")
    # TypedDicts and aliases the stub defines for annotations only are not bindings.
    helpers = {n for n, node in STUBS.items() if isinstance(node, ast.ClassDef)
               and any(isinstance(b, ast.Name) and b.id == "TypedDict" for b in node.bases)}
    extra = {d for d in declared if d.split(".")[0] not in helpers} - runtime
    assert not extra, f"the stub declares what the bindings do not have: {sorted(extra)}"
