"""Recognise one call as an AI call site: an SDK client's method, a LiteLLM or LangChain call, or raw HTTP to a
provider's host or API path; and read its provider, model, base URL and key from the source."""

from __future__ import annotations

import ast
import re
from dataclasses import replace

from airisk.init.families import (
    LANGCHAIN_METHODS,
    MODULE_CALLS,
    ROUTER_METHODS,
    SDK_METHODS,
    Family,
    ai_path,
    bare_model,
    provider_of_model,
    provider_of_url,
)
from airisk.init.findings import CallSite, Setting, redact_url
from airisk.init.index import dotted
from airisk.init.resolve import UNKNOWN, Client, Ctx, Node, Resolver, Str

HARD_CODED = "(a literal in the code, not shown)"
HTTP_METHODS = {"post": 0, "get": 0, "put": 0, "stream": 1, "request": 1}


class SiteReader:
    """Reads call sites; values are followed with the scan's `Resolver`."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def read(self, call: ast.Call, ctx: Ctx) -> tuple[CallSite, tuple[CallSite, ...]] | None:
        name = dotted(call.func, ctx.module.imports)
        if name in MODULE_CALLS:
            return self._library_call(call, ctx, MODULE_CALLS[name], None)
        if not isinstance(call.func, ast.Attribute):
            return None
        method = call.func.attr
        if method in SDK_METHODS | LANGCHAIN_METHODS | ROUTER_METHODS:
            # ``self.client.chat.completions.create``: the client is the shortest prefix that resolves to one
            prefixes = [call.func.value]
            while isinstance(prefixes[-1], ast.Attribute):
                prefixes.append(prefixes[-1].value)
            client = None
            for prefix in reversed(prefixes):
                if isinstance(prefix, ast.Name) and prefix.id in ("self", "cls"):
                    continue
                client = self.resolver.resolve(prefix, ctx)
                if isinstance(client, Client):
                    break
            if isinstance(client, Client):
                kind = client.family.kind
                if (kind == "sdk" and method in SDK_METHODS) or (kind == "langchain" and method in LANGCHAIN_METHODS) \
                        or (kind == "litellm" and method in ROUTER_METHODS):
                    return self._library_call(call, ctx, client.family, client)
        if method in HTTP_METHODS:
            return self._http_call(call, ctx, method)
        return None

    def _where(self, call: ast.Call, ctx: Ctx) -> tuple[str, str | None]:
        function = ctx.function
        if function is None:
            return "<module>", None
        return function.qualname, function.module.routes.get(function.node.name)

    def _setting(self, value: object, how: str, secret: bool = False) -> Setting:
        """A `Setting` from a resolved value; a secret's literal is never kept (so never printed or written)."""
        if isinstance(value, Str) and (value.text is not None or value.env):
            text = value.text if value.text is None or UNKNOWN not in value.text else None
            if secret and text is not None:
                return Setting(None, value.env, f"{how} {HARD_CODED}")
            return Setting(text, value.env, how)
        return Setting()

    def _kw(self, call: ast.Call, ctx: Ctx, names: tuple[str, ...], client: Client | None):
        for k in call.keywords:
            if k.arg in names:
                return self.resolver.resolve(k.value, ctx), f"{k.arg}="
        if client is not None and (found := client.kwarg(*names)) is not None:
            return self.resolver.resolve(found[0], found[1]), f"constructor {names[0]}="
        return None, ""

    def _library_call(self, call: ast.Call, ctx: Ctx, family: Family, client: Client | None):
        function, route = self._where(call, ctx)
        path = ctx.module.path
        model_value, how = self._kw(call, ctx, ("model", "model_name"), client)
        if model_value is None and call.args and family.name == "litellm" and client is None:
            model_value, how = self.resolver.resolve(call.args[0], ctx), "first argument"
        model = self._setting(model_value, how)
        base_value, base_how = self._kw(call, ctx, family.base_kwargs, client)
        key_value, key_how = self._kw(call, ctx, family.key_kwargs, client)
        base = self._setting(base_value, base_how) if base_value is not None else \
            Setting(None, family.base_env, "SDK default") if family.base_env else Setting()
        key = self._setting(key_value, key_how, secret=True) if key_value is not None else \
            Setting(None, family.key_env, "SDK default") if family.key_env else Setting()
        backups: list[CallSite] = []
        litellm_params: dict[str, Setting] = {}
        if family.kind == "litellm" and client is not None and model.literal:  # a Router: look the name up
            entry = self._router_entry(client, model.literal)
            if entry is not None:
                litellm_params = entry
                model = litellm_params.get("model", model)
                base = litellm_params.get("api_base", base)
                key = litellm_params.get("api_key", key)
        provider = family.provider
        if provider is None and model.literal:
            provider = provider_of_model(model.literal)
            mp = self._kw(call, ctx, ("model_provider",), client)[0] if family.kind == "langchain" else None
            if isinstance(mp, Str) and mp.text:
                provider = provider_of_model(f"{mp.text}:x") or provider
        if base.literal and (by_url := provider_of_url(base.literal)) is not None:
            provider = by_url  # the OpenAI SDK pointed at Groq, a local vLLM, ...
        note = ""
        if provider is None:
            note = f"{family.name}: the provider could not be decided (model {model.literal or 'not a literal'})"
        elif not model.literal:
            note = f"{family.name}: the model is not a literal; the target uses the catalog default"
        site = CallSite(path, call.lineno, family.kind, family.name, provider, function,
                        replace(model, literal=bare_model(model.literal) if model.literal else None),
                        base, key, route)
        if family.kind == "litellm":
            for name in self._litellm_fallbacks(call, ctx, client, model_value):
                entry = self._router_entry(client, name) if client is not None else None
                m = (entry or {}).get("model", Setting(name, None, "fallbacks="))
                backups.append(replace(site, provider=provider_of_model(m.literal or ""),
                                       model=replace(m, literal=bare_model(m.literal) if m.literal else None),
                                       base_url=(entry or {}).get("api_base", Setting()),
                                       key=(entry or {}).get("api_key", Setting()), note=""))
        if client is not None:
            for backup in client.fallbacks:
                sub = self._library_call(call, ctx, backup.family, backup)
                if sub is not None:
                    backups.append(replace(sub[0], note=""))
        if HARD_CODED in site.key.how:
            note = "; ".join(filter(None, [note, "the API key is written in the code: move it to an environment "
                                                 "variable (it is not shown here)"]))
        site = replace(site, note=note)
        return site, tuple(backups)

    def _router_entry(self, client: Client, name: str) -> dict[str, Setting] | None:
        found = client.kwarg("model_list")
        if found is None:
            return None
        items = self.resolver.resolve(*found)
        if not isinstance(items, Node) or isinstance(items.node, ast.Dict):
            return None
        for elt in items.node.elts:
            entry = self.resolver.resolve(elt, items.ctx)
            fields = self._dict(entry)
            label = fields.get("model_name")
            if not isinstance(label, Str) or label.text != name:
                continue
            params = self._dict(fields.get("litellm_params"))
            return {k: self._setting(v, f"model_list {k}", secret=k == "api_key") for k, v in params.items()
                    if k in ("model", "api_base", "api_key")}
        return None

    def _dict(self, value: object) -> dict[str, object]:
        if not isinstance(value, Node) or not isinstance(value.node, ast.Dict):
            return {}
        out: dict[str, object] = {}
        for k, v in zip(value.node.keys, value.node.values, strict=True):
            if isinstance(k, ast.Constant) and isinstance(k.value, str):
                out[k.value] = self.resolver.resolve(v, value.ctx)
        return out

    def _litellm_fallbacks(self, call: ast.Call, ctx: Ctx, client: Client | None, model_value: object) -> list[str]:
        value, _ = self._kw(call, ctx, ("fallbacks",), client)
        if not isinstance(value, Node) or isinstance(value.node, ast.Dict):
            return []
        names: list[str] = []
        for elt in value.node.elts:
            item = self.resolver.resolve(elt, value.ctx)
            if isinstance(item, Str) and item.text:
                names.append(item.text)
            for key, targets in self._dict(item).items():  # Router: [{"gpt": ["claude"]}]
                if isinstance(model_value, Str) and key == model_value.text and isinstance(targets, Node):
                    for t in targets.node.elts if not isinstance(targets.node, ast.Dict) else []:
                        resolved = self.resolver.resolve(t, targets.ctx)
                        if isinstance(resolved, Str) and resolved.text:
                            names.append(resolved.text)
        return names

    def _http_call(self, call: ast.Call, ctx: Ctx, method: str):
        position = HTTP_METHODS[method]
        url_expr = next((k.value for k in call.keywords if k.arg == "url"), None)
        if url_expr is None and len(call.args) > position:
            url_expr = call.args[position]
        url = self.resolver.resolve(url_expr, ctx)
        if not isinstance(url, Str) or url.text is None:
            return None
        # A path alone counts only behind a base the code configures ({base}/chat/completions), or on an
        # absolute URL: a literal "/api/chat" is the product's own route (a test client), not a provider's.
        is_ai, implied = ai_path(url.text) if url.text.startswith((UNKNOWN, "http://", "https://")) else (False, None)
        by_host = provider_of_url(url.text) if not url.text.startswith(UNKNOWN) else None
        if not is_ai and by_host is None:
            return None
        provider = by_host or implied
        function, route = self._where(call, ctx)
        library = (dotted(call.func, ctx.module.imports) or "").split(".")[0]
        library = library if library in ("httpx", "requests", "aiohttp") else "http"
        model = Setting()
        body = next((k.value for k in call.keywords if k.arg in ("json", "data")), None)
        fields = self._dict(self.resolver.resolve(body, ctx)) if body is not None else {}
        if "model" in fields:
            model = self._setting(fields["model"], "request body")
        elif (in_path := re.search(r"/models/([A-Za-z0-9._-]+):", url.text)) is not None:
            model = Setting(in_path.group(1), None, "URL")
        key = Setting()
        headers = next((k.value for k in call.keywords if k.arg == "headers"), None)
        for name, value in self._dict(self.resolver.resolve(headers, ctx)).items() if headers is not None else ():
            if name.lower() in ("authorization", "x-api-key", "api-key", "x-goog-api-key") and isinstance(value, Str):
                key = self._setting(value, f"header {name}", secret=True)
        base_text = url.text.split(UNKNOWN)[0] if not url.text.startswith(UNKNOWN) else None
        base = Setting(_base_of(url.text), url.env, "URL") if (url.env or base_text) else Setting()
        note = "" if provider else f"{library}: a call to {_redact(url.text)}: the provider could not be decided"
        if provider and not model.literal:
            note = f"{library}: the model is not a literal; the target uses the catalog default"
        if HARD_CODED in key.how:
            note = "; ".join(filter(None, [note, "the API key is written in the code: move it to an environment "
                                                 "variable (it is not shown here)"]))
        return CallSite(ctx.module.path, call.lineno, "http", library, provider, function, model, base, key,
                        route, note=note), ()


def _base_of(url: str) -> str | None:
    if url.startswith(UNKNOWN):
        return None
    url = url.split("?")[0]
    head = url.split(UNKNOWN)[0]
    is_ai, _ = ai_path(url)
    if UNKNOWN in url:
        return head.rstrip("/") or None
    if "/models/" in url:  # Gemini: {base}/v1beta/models/{model}:generateContent
        return url.split("/models/")[0]
    for path in ("/chat/completions", "/completions", "/responses", "/embeddings", "/v1/messages", "/messages"):
        if is_ai and url.endswith(path):
            return url[: -len(path)]
    return url


def _redact(url: str) -> str:
    return redact_url(url)
