"""An index of a parsed source tree: imports, functions, and where names and attributes get their values.

The scanner asks it "what is this expression?" (`Resolver` in `resolve.py`); the index only records where to
look. Attributes are matched by name across the module (``self.client``, ``s.openai_base_url``), which is
what a reader does too when a codebase passes one settings object or client around."""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(slots=True)
class Function:
    qualname: str
    node: ast.FunctionDef | ast.AsyncFunctionDef
    module: Module
    cls: str | None = None

    @property
    def params(self) -> list[ast.arg]:
        a = self.node.args
        return [*a.posonlyargs, *a.args, *a.kwonlyargs]


@dataclass(slots=True)
class Module:
    path: str  # relative to the scanned root
    tree: ast.Module
    imports: dict[str, str] = field(default_factory=dict)  # local name -> dotted name
    names: dict[str, list[ast.expr]] = field(default_factory=lambda: defaultdict(list))  # module-level bindings
    attrs: dict[str, list[tuple[ast.expr, Function | None]]] = field(default_factory=lambda: defaultdict(list))
    env_pairs: dict[str, str] = field(default_factory=dict)  # field name -> env var, from ("field", "ENV") pairs
    functions: list[Function] = field(default_factory=list)
    routes: dict[str, str] = field(default_factory=dict)  # function name -> web route path


def _is_env_name(text: str) -> bool:
    return len(text) > 1 and text.replace("_", "").isalnum() and text.upper() == text and not text[0].isdigit()


def _route_decorator(dec: ast.expr) -> str | None:
    if isinstance(dec, ast.Call) and isinstance(dec.func, ast.Attribute) and dec.args:
        first = dec.args[0]
        if (dec.func.attr in ("get", "post", "put", "patch", "delete", "route", "api_route", "websocket")
                and isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.startswith("/")):
            return first.value
    return None


def build_module(path: str, tree: ast.Module) -> Module:
    module = Module(path, tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                module.imports[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else \
                    alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                module.imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Tuple | ast.List) and len(node.elts) == 2:
            a, b = node.elts
            if (isinstance(a, ast.Constant) and isinstance(a.value, str) and isinstance(b, ast.Constant)
                    and isinstance(b.value, str) and _is_env_name(b.value) and a.value.isidentifier()):
                module.env_pairs.setdefault(a.value, b.value)
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if (isinstance(k, ast.Constant) and isinstance(k.value, str) and k.value.isidentifier()
                        and isinstance(v, ast.Constant) and isinstance(v.value, str) and _is_env_name(v.value)):
                    module.env_pairs.setdefault(k.value, v.value)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            first = node.args[0].value
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if isinstance(first, str) and first.startswith("/") and name.lower().endswith(
                    ("route", "path", "add_url_rule", "add_api_route")):
                for arg in [*node.args[1:], *(k.value for k in node.keywords)]:
                    for sub in ast.walk(arg):
                        if isinstance(sub, ast.Name):
                            module.routes.setdefault(sub.id, first)
    for stmt in tree.body:
        _bind(module.names, stmt)
    _collect(module, tree.body, prefix="", cls=None)
    return module


def _bind(table: dict[str, list[ast.expr]], stmt: ast.stmt) -> None:
    if isinstance(stmt, ast.Assign):
        for target in stmt.targets:
            if isinstance(target, ast.Name):
                table[target.id].append(stmt.value)
    elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
        if stmt.value is not None:
            table[stmt.target.id].append(stmt.value)
        else:
            table[stmt.target.id].append(stmt.annotation)  # a bare annotation says the type at least


def _collect(module: Module, body: list[ast.stmt], prefix: str, cls: str | None) -> None:
    for stmt in body:
        if isinstance(stmt, ast.ClassDef):
            for inner in stmt.body:
                if isinstance(inner, ast.Assign | ast.AnnAssign):
                    table: dict[str, list[ast.expr]] = defaultdict(list)
                    _bind(table, inner)
                    for name, values in table.items():
                        module.attrs[name].extend((v, None) for v in values)
            _collect(module, stmt.body, f"{prefix}{stmt.name}.", stmt.name)
        elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            function = Function(f"{prefix}{stmt.name}", stmt, module, cls)
            module.functions.append(function)
            for dec in stmt.decorator_list:
                if (route := _route_decorator(dec)) is not None:
                    module.routes.setdefault(stmt.name, route)
            for node in ast.walk(stmt):
                if isinstance(node, ast.Assign):
                    for target in node.targets:
                        if isinstance(target, ast.Attribute):
                            module.attrs[target.attr].append((node.value, function))
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Attribute) and node.value:
                    module.attrs[node.target.attr].append((node.value, function))
            _collect(module, stmt.body, f"{prefix}{stmt.name}.", cls)


def local_values(function: Function, name: str) -> list[ast.expr]:
    """What ``name`` is assigned inside ``function`` (``x = ...``, ``with ... as x``), in source order."""
    values: list[ast.expr] = []
    for node in ast.walk(function.node):
        if isinstance(node, ast.Assign):
            if any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                values.append(node.value)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            if node.value is not None:
                values.append(node.value)
        elif (isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name)
              and node.optional_vars.id == name):
            values.append(node.context_expr)
    return values


def dotted(expr: ast.expr, imports: dict[str, str]) -> str | None:
    """``a.b.c`` with ``a`` replaced by what it was imported as; None for anything but names and attributes."""
    parts: list[str] = []
    while isinstance(expr, ast.Attribute):
        parts.append(expr.attr)
        expr = expr.value
    if not isinstance(expr, ast.Name):
        return None
    head = imports.get(expr.id, expr.id)
    return ".".join([head, *reversed(parts)])
