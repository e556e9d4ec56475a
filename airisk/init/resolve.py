"""What an expression is, as far as the source says: a string (with the environment variable it comes from),
an SDK client (with its constructor's arguments), a dict or list literal, or unknown (None).

Values are followed through local assignments, module globals, attributes (by name), function parameters
(to the argument the caller passed, or the SDK type a parameter is annotated with) and constructor calls of
the product's own classes. Depth is bounded, so a cycle or a deep chain ends as "unknown", never a crash."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from airisk.init.families import CONSTRUCTORS, Family
from airisk.init.index import Function, Module, dotted, local_values

MAX_DEPTH = 12
STEPS = 20_000  # resolutions per function scanned: a bound on time, whatever the code (the rest is "unknown")


@dataclass(frozen=True, slots=True)
class Ctx:
    module: Module
    function: Function | None = None
    args: tuple[tuple[str, ast.expr, Ctx], ...] = ()  # parameter -> the caller's expression, in its context

    def arg(self, name: str) -> tuple[ast.expr, Ctx] | None:
        for param, expr, ctx in self.args:
            if param == name:
                return expr, ctx
        return None


@dataclass(frozen=True, slots=True)
class Str:
    text: str | None  # None: the value is not in the source (only its env var is)
    env: str | None = None


@dataclass(frozen=True, slots=True)
class Client:
    family: Family
    dotted: str
    kwargs: tuple[tuple[str, ast.expr, Ctx], ...] = ()
    fallbacks: tuple[Client, ...] = ()

    def kwarg(self, *names: str) -> tuple[ast.expr, Ctx] | None:
        for name, expr, ctx in self.kwargs:
            if name in names:
                return expr, ctx
        return None


@dataclass(frozen=True, slots=True)
class Node:
    """A dict or list literal, kept as syntax with its context so its parts can be resolved on demand."""

    node: ast.Dict | ast.List | ast.Tuple
    ctx: Ctx


Value = Str | Client | Node | None
UNKNOWN = "{?}"


@dataclass(slots=True)
class Resolver:
    modules: list[Module]
    steps: int = 0
    _calls: dict[str, list[tuple[Module, ast.Call]]] | None = None  # callee name -> calls, built on first use
    _locals: dict[tuple[int, str], list[ast.expr]] = field(default_factory=dict)

    def spent(self) -> bool:
        return self.steps > STEPS

    def resolve(self, expr: ast.expr | None, ctx: Ctx, depth: int = 0) -> Value:
        self.steps += 1
        if expr is None or depth > MAX_DEPTH or self.steps > STEPS:
            return None
        d = depth + 1
        if isinstance(expr, ast.Constant):
            return Str(expr.value) if isinstance(expr.value, str) else None
        if isinstance(expr, ast.JoinedStr | ast.BinOp):
            return self._concat(expr, ctx, d)
        if isinstance(expr, ast.BoolOp) and isinstance(expr.op, ast.Or):
            values = [self.resolve(v, ctx, d) for v in expr.values]
            strs = [v for v in values if isinstance(v, Str)]
            if strs:
                env = next((s.env for s in strs if s.env), None)
                text = next((s.text for s in strs if s.text is not None), None)
                return Str(text, env)
            return next((v for v in values if v is not None), None)
        if isinstance(expr, ast.Dict | ast.List | ast.Tuple):
            return Node(expr, ctx)
        if isinstance(expr, ast.Await):
            return self.resolve(expr.value, ctx, d)
        if isinstance(expr, ast.Subscript):
            name = dotted(expr.value, ctx.module.imports)
            key = self.resolve(expr.slice, ctx, d)
            if name == "os.environ" and isinstance(key, Str) and key.text:
                return Str(None, key.text)
            return None
        if isinstance(expr, ast.Call):
            return self._call(expr, ctx, d)
        if isinstance(expr, ast.Name):
            return self._name(expr.id, ctx, d)
        if isinstance(expr, ast.Attribute):
            return self._attribute(expr, ctx, d)
        return None

    def _concat(self, expr: ast.expr, ctx: Ctx, d: int) -> Str | None:
        parts = expr.values if isinstance(expr, ast.JoinedStr) else [expr.left, expr.right]
        if isinstance(expr, ast.BinOp) and not isinstance(expr.op, ast.Add):
            return None
        texts: list[str] = []
        env = None
        for part in parts:
            value = self.resolve(part.value if isinstance(part, ast.FormattedValue) else part, ctx, d)
            if isinstance(value, Str):
                texts.append(value.text if value.text is not None else UNKNOWN)
                env = env or value.env
            else:
                texts.append(UNKNOWN)
        return Str("".join(texts), env)

    def _call(self, call: ast.Call, ctx: Ctx, d: int) -> Value:
        name = dotted(call.func, ctx.module.imports)
        if name in ("os.environ.get", "os.getenv", "os.environ.setdefault") and call.args:
            key = self.resolve(call.args[0], ctx, d)
            default = self.resolve(call.args[1], ctx, d) if len(call.args) > 1 else None
            if isinstance(key, Str) and key.text:
                return Str(default.text if isinstance(default, Str) else None, key.text)
            return None
        if name in CONSTRUCTORS:
            kwargs = [(k.arg, k.value, ctx) for k in call.keywords if k.arg]
            if name.endswith("init_chat_model") and call.args:
                kwargs.append(("model", call.args[0], ctx))
            return Client(CONSTRUCTORS[name], name, tuple(kwargs))
        if isinstance(call.func, ast.Attribute) and call.func.attr == "with_fallbacks" and call.args:
            primary = self.resolve(call.func.value, ctx, d)
            others = self.resolve(call.args[0], ctx, d)
            if isinstance(primary, Client) and isinstance(others, Node):
                backups = [self.resolve(e, others.ctx, d) for e in others.node.elts] \
                    if not isinstance(others.node, ast.Dict) else []
                return Client(primary.family, primary.dotted, primary.kwargs,
                              tuple(b for b in backups if isinstance(b, Client)))
            return primary
        # The product's own class: its instance is whatever the class's attributes say; nothing to return here.
        return None

    def _name(self, name: str, ctx: Ctx, d: int) -> Value:
        if (bound := ctx.arg(name)) is not None:
            return self.resolve(bound[0], bound[1], d)
        if ctx.function is not None:
            key = (id(ctx.function.node), name)
            if key not in self._locals:
                self._locals[key] = local_values(ctx.function, name)
            for value in reversed(self._locals[key]):
                if (found := self.resolve(value, ctx, d)) is not None:
                    return found
            for param in ctx.function.params:
                if param.arg == name:
                    return self._annotated(param.annotation, ctx)
        for value in reversed(ctx.module.names.get(name, [])):
            found = self._annotated(value, ctx) or self.resolve(value, Ctx(ctx.module), d)
            if found is not None:
                return found
        if (imported := ctx.module.imports.get(name)) is not None and "." in imported:
            # ``from app.clients import CLAUDE``: the global of that name in the product's own module
            source, _, attr = imported.rpartition(".")
            for module in self.modules:
                if _module_name(module.path).endswith(source) and attr in module.names:
                    return self._name(attr, Ctx(module), d)
        return None

    def _annotated(self, annotation: ast.expr | None, ctx: Ctx) -> Client | None:
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                annotation = ast.parse(annotation.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(annotation, ast.BinOp):  # X | None
            return self._annotated(annotation.left, ctx) or self._annotated(annotation.right, ctx)
        if isinstance(annotation, ast.Subscript):  # Optional[X]
            return self._annotated(annotation.slice, ctx)
        name = dotted(annotation, ctx.module.imports) if annotation is not None else None
        if name in CONSTRUCTORS:
            return Client(CONSTRUCTORS[name], name)
        return None

    def _attribute(self, expr: ast.Attribute, ctx: Ctx, d: int) -> Value:
        name = dotted(expr, ctx.module.imports)
        if name in CONSTRUCTORS:
            return None
        env = ctx.module.env_pairs.get(expr.attr)
        for value, owner in reversed(ctx.module.attrs.get(expr.attr, [])):
            found = self._annotated(value, ctx) if owner is None else None
            if found is None:
                owner_ctx = Ctx(ctx.module, owner) if owner is not None else Ctx(ctx.module)
                if owner is not None and isinstance(value, ast.Name) and any(
                        p.arg == value.id for p in owner.params) and owner.cls is not None:
                    found = self._constructor_arg(owner, value.id, d) or self._name(value.id, owner_ctx, d)
                else:
                    found = self.resolve(value, owner_ctx, d)
            if found is not None:
                if env and isinstance(found, Str) and not found.env:
                    return Str(found.text, env)
                return found
        if env:
            return Str(None, env)
        return None

    def _constructor_arg(self, method: Function, param: str, d: int) -> Value:
        """What the product passes for ``param`` when it builds ``method``'s class (``AI(settings, client)``)."""
        if method.node.name != "__init__" or method.cls is None:
            return None
        names = [p.arg for p in method.params][1:]
        if self._calls is None:
            self._calls = {}
            for module in self.modules:
                for node in ast.walk(module.tree):
                    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
                        callee = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                        self._calls.setdefault(callee, []).append((module, node))
        for module, node in self._calls.get(method.cls, []):
            expr = next((k.value for k in node.keywords if k.arg == param), None)
            if expr is None and param in names and names.index(param) < len(node.args):
                expr = node.args[names.index(param)]
            if expr is None:
                continue
            caller = enclosing(module, node)
            if (found := self.resolve(expr, Ctx(module, caller), d)) is not None:
                return found
        return None


def _module_name(path: str) -> str:
    """``app/clients.py`` -> ``app.clients`` (``app/__init__.py`` -> ``app``)."""
    name = path.removesuffix(".py").replace("/", ".")
    return name.removesuffix(".__init__")


def enclosing(module: Module, node: ast.AST) -> Function | None:
    """The innermost function of ``module`` whose body holds ``node``."""
    best = None
    for function in module.functions:
        f = function.node
        inside = f.lineno <= getattr(node, "lineno", -1) <= (f.end_lineno or f.lineno)
        if inside and (best is None or f.lineno >= best.node.lineno):
            best = function
    return best
