"""Find a product's AI calls in its Python source, and propose one feature per call site.

A function that calls a model, directly or through the product's own helpers, is followed up to the
functions nothing else in the product calls for AI: those name the features (or the web route they serve).
Inside one, a call in a ``try`` whose ``except`` makes a second AI call, or lets the function carry on,
gives a chain: the second call is the fallback, carrying on without one is a degraded mode."""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from airisk.init.findings import CallSite, Feature, Link, Scan
from airisk.init.index import Function, Module, build_module
from airisk.init.resolve import Ctx, Resolver
from airisk.init.sites import SiteReader

MAX_FILE_BYTES = 2_000_000
MAX_CALL_DEPTH = 6
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "build", "dist", "site-packages",
             "tests", "test"}  # the product's tests call its routes and fakes, not its providers


def _is_test_file(name: str) -> bool:
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


@dataclass(frozen=True, slots=True)
class Mark:
    """Where a call sits relative to the try statements of the function being followed."""

    body: tuple[int, ...] = ()  # ids of the try statements whose body holds it
    handler: tuple[int, ...] = ()  # ... whose except branch holds it
    after: tuple[int, ...] = ()  # ... that came before it in the same block and let the function carry on


@dataclass(frozen=True, slots=True)
class Hit:
    site: CallSite
    mark: Mark
    backups: tuple[CallSite, ...] = ()  # fallbacks the library itself runs (LiteLLM, LangChain)


def python_files(root: Path) -> list[Path]:
    """The product's Python files under ``root``: not its tests, virtualenvs, builds or hidden folders."""
    if root.is_file():
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py") and not _is_test_file(f))
    return found


def parse_file(path: Path, rel: str) -> tuple[ast.Module | None, str | None]:
    """The module's syntax tree, or None and one line saying why it cannot be read."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None, f"{rel}: skipped: larger than {MAX_FILE_BYTES // 1_000_000} MB"
        data = path.read_bytes()
    except OSError as exc:
        return None, f"{rel}: cannot read: {exc.strerror or exc}"
    try:
        return ast.parse(data, filename=rel), None
    except SyntaxError as exc:
        return None, f"{rel}: cannot parse: line {exc.lineno}: {exc.msg}"
    except (ValueError, RecursionError, MemoryError) as exc:
        return None, f"{rel}: cannot parse: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def scan(root: Path) -> Scan:
    """Every AI call site under ``root`` and the features proposed from them; never raises on bad source."""
    result = Scan(str(root))
    modules: list[Module] = []
    base = root if root.is_dir() else root.parent
    for path in python_files(root):
        rel = path.relative_to(base).as_posix()
        tree, problem = parse_file(path, rel)
        result.files += 1
        if tree is None:
            result.unreadable.append(problem or rel)
            continue
        try:
            modules.append(build_module(rel, tree))
        except RecursionError:
            result.unreadable.append(f"{rel}: cannot scan: nested too deeply")
    _Scanner(modules, result).run()
    return result


class _Scanner:
    def __init__(self, modules: list[Module], result: Scan) -> None:
        self.modules = modules
        self.result = result
        self.resolver = Resolver(modules)
        self.reader = SiteReader(self.resolver)
        self.by_name: dict[str, list[Function]] = {}
        for module in modules:
            for function in module.functions:
                self.by_name.setdefault(function.node.name, []).append(function)
        self.called: set[int] = set()  # ids of functions some AI-calling function calls
        self.memo: dict[int, list[Hit]] = {}  # a function followed with no arguments bound: its hits

    def run(self) -> None:
        per_function: list[tuple[Function, list[Hit]]] = []
        for module in self.modules:
            for function in module.functions:
                self.resolver.steps = 0
                try:
                    hits = self.follow(function, Ctx(module, function), 0, set(), root=True)
                except RecursionError:
                    self.result.unreadable.append(f"{module.path}: cannot scan {function.qualname}: too deep")
                    continue
                except Exception as exc:  # a scanner bug on odd source must cost one function, not the run
                    self.result.unreadable.append(f"{module.path}: cannot scan {function.qualname}: "
                                                  f"{type(exc).__name__}")
                    continue
                if hits:
                    per_function.append((function, hits))
                    for hit in hits:
                        self._record(hit)
            self.resolver.steps = 0
            try:
                top = self.walk(module.tree.body, Ctx(module), 0, set(), Mark(), root=True)
            except Exception as exc:  # RecursionError included: as above, one line and on to the next
                self.result.unreadable.append(f"{module.path}: cannot scan the module body: {type(exc).__name__}")
                top = []
            for hit in top:
                self._record(hit)
            if top:
                per_function.append((None, top))  # type: ignore[arg-type]
        for function, hits in per_function:
            if function is not None and id(function) in self.called:
                continue
            if function is not None and any(isinstance(d, ast.Name | ast.Attribute) and _attr_name(d) in
                                            ("property", "cached_property") for d in function.node.decorator_list):
                continue
            self._features(function, hits)

    def _record(self, hit: Hit) -> None:
        for site in (hit.site, *hit.backups):
            if site not in self.result.sites:
                self.result.sites.append(site)
                if site.note:
                    self.result.undecided.append(f"{site.where} ({site.function}): {site.note}")

    # -- following calls ------------------------------------------------------------------------------

    def follow(self, function: Function, ctx: Ctx, depth: int, seen: set[int], root: bool = False) -> list[Hit]:
        if depth > MAX_CALL_DEPTH or id(function) in seen or self.resolver.spent():
            return []
        if not ctx.args and id(function) in self.memo:
            return self.memo[id(function)]
        hits = self.walk(function.node.body, ctx, depth, seen | {id(function)}, Mark(), root=root,
                         function=function)
        if not ctx.args and not self.resolver.spent():
            self.memo[id(function)] = hits
        return hits

    def walk(self, stmts: list[ast.stmt], ctx: Ctx, depth: int, seen: set[int], mark: Mark, root: bool = False,
             function: Function | None = None) -> list[Hit]:
        hits: list[Hit] = []
        carried_on: tuple[int, ...] = ()
        for stmt in stmts:
            here = replace(mark, after=mark.after + carried_on)
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            if isinstance(stmt, ast.Try | ast.TryStar):
                tid = id(stmt)
                hits += self.walk(stmt.body, ctx, depth, seen, replace(here, body=(*here.body, tid)), root, function)
                for handler in stmt.handlers:
                    hits += self.walk(handler.body, ctx, depth, seen, replace(here, handler=(*here.handler, tid)),
                                      root, function)
                hits += self.walk(stmt.orelse + stmt.finalbody, ctx, depth, seen, here, root, function)
                if any(not _ends(h.body) for h in stmt.handlers):
                    carried_on += (tid,)
                continue
            blocks = [getattr(stmt, name) for name in ("body", "orelse") if isinstance(getattr(stmt, name, None), list)]
            heads = [n for n in ast.iter_child_nodes(stmt) if not isinstance(n, ast.stmt | ast.excepthandler)
                     and not isinstance(n, list)]
            for head in heads:
                hits += self.calls(head, ctx, depth, seen, here, root)
            for block in blocks:
                hits += self.walk(block, ctx, depth, seen, here, root, function)
            if isinstance(stmt, ast.Match):
                for case in stmt.cases:
                    hits += self.walk(case.body, ctx, depth, seen, here, root, function)
        return hits

    def calls(self, expr: ast.AST, ctx: Ctx, depth: int, seen: set[int], mark: Mark, root: bool) -> list[Hit]:
        hits: list[Hit] = []
        nodes = [n for n in ast.walk(expr) if isinstance(n, ast.Call)]
        nodes.sort(key=lambda n: (n.lineno, n.col_offset))
        for call in nodes:
            self.resolver.steps += 10
            found = self.reader.read(call, ctx)
            if found is not None:
                hit = Hit(found[0], mark, found[1])
                hits.append(hit)
                continue
            for callee, callee_ctx in self.callees(call, ctx):
                inner = self.follow(callee, callee_ctx, depth + 1, seen)
                if inner:
                    if root:
                        self.called.add(id(callee))
                    hits += [Hit(h.site, mark, h.backups) for h in inner]
        return hits

    def callees(self, call: ast.Call, ctx: Ctx) -> list[tuple[Function, Ctx]]:
        """The product's own functions this call may run, each with its parameters bound to the arguments."""
        if isinstance(call.func, ast.Name):
            name, method = call.func.id, False
            candidates = [f for f in self.by_name.get(name, []) if f.cls is None]
            local = [f for f in candidates if f.module is ctx.module]
            candidates = local or (candidates if len(candidates) == 1 else [])
        elif isinstance(call.func, ast.Attribute):
            name, method = call.func.attr, True
            candidates = [f for f in self.by_name.get(name, []) if f.cls is not None]
            if isinstance(call.func.value, ast.Name) and call.func.value.id in ("self", "cls") and ctx.function:
                mine = [f for f in candidates if f.cls == ctx.function.cls and f.module is ctx.function.module]
                candidates = mine or candidates
            if len(candidates) > 1:
                return []
        else:
            return []
        out = []
        for function in candidates:
            params = [p.arg for p in [*function.node.args.posonlyargs, *function.node.args.args]]
            if method and params and params[0] in ("self", "cls"):
                params = params[1:]
            bound = [(p, a, ctx) for p, a in zip(params, call.args, strict=False) if not isinstance(a, ast.Starred)]
            bound += [(k.arg, k.value, ctx) for k in call.keywords if k.arg]
            out.append((function, Ctx(function.module, function, tuple(bound))))
        return out

    # -- proposing features -----------------------------------------------------------------------------

    def _features(self, function: Function | None, hits: list[Hit]) -> None:
        primaries: list[Hit] = []
        fallback_of: dict[int, list[Link]] = {}
        for hit in hits:
            parent = next((p for p in primaries if _falls_back(p.mark, hit.mark)), None)
            if parent is not None:
                fallback_of[id(parent)].append(Link(hit.site, why=f"when the call at {parent.site.where} fails"))
                continue
            primaries.append(hit)
            fallback_of[id(hit)] = [Link(b, why="the library's fallbacks") for b in hit.backups]
        for hit in primaries:
            chain = [Link(hit.site), *fallback_of[id(hit)]]
            qualname = function.qualname if function is not None else Path(hit.site.path).stem
            if len(chain) == 1 and self._carries_on(hit, hits, function):
                chain.append(Link(degraded="fallback", why=f"an except branch lets {qualname}() go on without AI: "
                                                           "check what it serves"))
            route = function.module.routes.get(function.node.name) if function is not None else None
            self.result.features.append(Feature(_feature_name(qualname, route), qualname, hit.site.path,
                                                hit.site.line, route, chain))

    def _carries_on(self, hit: Hit, hits: list[Hit], function: Function | None) -> bool:
        if function is None or not hit.mark.body:
            return False
        for node in ast.walk(function.node):
            if (isinstance(node, ast.Try | ast.TryStar) and id(node) in hit.mark.body
                    and any(not _ends_in_raise(h.body) for h in node.handlers)):
                return True
        return False


def _attr_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else ""


def _ends(body: list[ast.stmt]) -> bool:
    """Whether a block always leaves the function (raise or return) at its end."""
    return bool(body) and isinstance(body[-1], ast.Raise | ast.Return)


def _ends_in_raise(body: list[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Raise)


def _falls_back(primary: Mark, later: Mark) -> bool:
    """Whether a call marked ``later`` runs when the call marked ``primary`` failed."""
    return any(t in later.handler or t in later.after for t in primary.body)


def _feature_name(qualname: str, route: str | None) -> str:
    if route:
        segments = [s for s in route.strip("/").split("/") if s and not s.startswith(("{", "<", ":"))]
        if segments:
            return re.sub(r"[^a-z0-9_-]+", "-", segments[-1].lower()).strip("-") or "feature"
    name = qualname.split(".")[-1].lstrip("_") or "feature"
    for prefix in ("handle_", "api_", "do_"):
        name = name.removeprefix(prefix)
    return name.lower() or "feature"
