"""The provider emulator: every catalog provider's protocol on one loopback port.

``/<provider>/...`` speaks that provider's protocol under the path its real API uses
(``/openai/v1/chat/completions``, ``/anthropic/v1/messages``,
``/gemini/v1beta/models/{model}:streamGenerateContent``, ``/cohere/v2/chat``,
``/ollama/api/chat``, ``/azure-openai/openai/deployments/{d}/chat/completions``, ...),
streaming and not, with model listings (each in its provider's shape and paging; a model can be
removed from a listing or given a retirement date through the control API) and a Statuspage-style
``/status/<provider>/api/v2/summary.json``. Each route has a latency `Profile`; faults
from `chaos.faults` are set at run time through the control API (`chaos.control`).

It answers canary questions correctly (a good model), so a probe passes until a
fault says otherwise, and the storefront example's four features plausibly
(`chaos.answers`), so their eval sets measure a model that does the job. Served by
aiohttp because a fault needs the raw transport: a connection reset is a real RST
(SO_LINGER 0), a hang is a held socket.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import struct
import time
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from chaos.answers import respond, system_prompt
from chaos.asks import BadRequest, read_ask
from chaos.control.aiohttpmount import add_routes
from chaos.controlguard import LOOPBACK, ControlGuard
from chaos.emulator_profile import Profile, profile_dict
from chaos.faults import Fault, FaultSet, RequestInfo, known_fault_types
from chaos.faults.catalogue import response_effect, stream_effect
from chaos.faults.wire import Break, Drop, Hold, Synthesize, Unterminated
from chaos.requestlog import RequestLog
from chaos.speakers import SPEAKERS, Ask, Listed, Speaker, routes_for
from chaos.statuspage import StatusPage
from probes.canary import solve
from probes.catalog import CATALOG, Provider

DEFAULT_PORT = 8470
_NONCE = re.compile(r"\[probe (\w+)\]")
FILLER = "is my answer, as far as this emulator can tell you today, tomorrow and the day after".split()
TEXT = "Hello from the airisk emulator, a stand-in for a real model that streams its words".split()
_TOKEN = re.compile(r"\s*\S+")  # a composed answer streams a word (with the space before it) a token


@dataclass(slots=True)
class ListingEntry:
    """What the control API said about one model of one route's listing."""

    listed: bool = True
    retires: str | None = None  # YYYY-MM-DD


MAX_SEEN = 200  # models remembered per route from the requests it answered
MAX_LISTING_ENTRIES = 1000  # models the control API may place per route


class Listings:
    """Each route's model listing: the catalog's model, every model the route has been asked for (the
    emulator answers any model, so it lists what it served), and what the control API set: a model
    removed (``listed: false``) or given a retirement date, added if it was not there."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, ListingEntry]] = {}
        self.seen: dict[str, dict[str, None]] = {}

    def saw(self, route: str, model: str) -> None:
        seen = self.seen.setdefault(route, {})
        if model not in seen and len(seen) < MAX_SEEN:
            seen[model] = None

    def set(self, route: str, model: str, *, listed: bool, retires: str | None) -> None:
        entries = self.entries.setdefault(route, {})
        if model not in entries and len(entries) >= MAX_LISTING_ENTRIES:
            raise ValueError(f"models.{route}: more than {MAX_LISTING_ENTRIES} models set; reset first")
        entries[model] = ListingEntry(listed, retires)

    def models(self, route: str, default: str) -> list[Listed]:
        entries = self.entries.get(route, {})
        names = dict.fromkeys([default, *self.seen.get(route, {}), *entries])
        listed = []
        for name in names:
            entry = entries.get(name, ListingEntry())
            if entry.listed:
                listed.append(Listed(name, entry.retires))
        return listed

    def to_dict(self) -> dict[str, Any]:
        return {route: {m: asdict(e) for m, e in entries.items()} for route, entries in self.entries.items() if entries}

    def clear(self) -> None:
        self.entries.clear()
        self.seen.clear()


class Emulator:
    """State shared by the handlers: faults, profiles, status pages, request log."""

    def __init__(self, *, seed: int | None = None, profile: Profile | None = None) -> None:
        self.rng = random.Random(seed)
        self.faults = FaultSet(random.Random(seed))
        self.default_profile = profile or Profile()
        self._initial_profile = asdict(self.default_profile)
        self.guard = LOOPBACK  # who may use the control API; `serve` sets it for the address it binds
        self.profiles: dict[str, Profile] = {}
        self.pages = {name: StatusPage(name) for name in CATALOG}
        self.log = RequestLog(size=2000)  # read through the control API's log (entries get an id)
        self.listings = Listings()
        self.timeline: asyncio.Task | None = None

    def profile(self, route: str) -> Profile:
        return self.profiles.get(route) or self.default_profile

    def reset(self) -> None:
        self.faults.clear()
        self.profiles.clear()
        self.listings.clear()
        for key, value in self._initial_profile.items():  # "*" back to what the emulator started with
            setattr(self.default_profile, key, value)
        for page in self.pages.values():
            page.resolve_all()
        if self.timeline is not None:
            self.timeline.cancel()
            self.timeline = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        for provider in CATALOG.values():
            _add_provider_routes(app, self, provider)
        app.router.add_get("/status/{provider}/api/v2/summary.json", self._summary)
        app.router.add_get("/status/{provider}/api/v2/status.json", self._summary)
        app.router.add_get("/status/{provider}/api/v2/incidents.json", self._incidents)
        add_routes(app, self)  # /_airisk/: the control API, guarded in `chaos.control.api`
        return app

    async def _summary(self, request: web.Request) -> web.Response:
        page = self.pages.get(request.match_info["provider"])
        if page is None:
            raise web.HTTPNotFound()
        return web.json_response(page.summary())

    async def _incidents(self, request: web.Request) -> web.Response:
        page = self.pages.get(request.match_info["provider"])
        if page is None:
            raise web.HTTPNotFound()
        return web.json_response(page.incidents_json())


def _add_provider_routes(app: web.Application, emu: Emulator, provider: Provider) -> None:
    """The paths the provider's speaker declares (`chaos.speakers.serving`), under its prefix."""
    speaker = SPEAKERS[provider.dialect]
    route = provider.name

    async def gen(request: web.Request) -> web.StreamResponse:
        try:
            return await _generate(emu, request, route, speaker, provider.dialect)
        except ConnectionResetError:  # the client hung up mid-answer (aiohttp's own error subclasses it)
            return web.Response(status=499)

    def listing(variant: str | None):
        async def handler(request: web.Request) -> web.Response:
            page, next_page = speaker.paging.page(request.query, emu.listings.models(route, provider.model))
            return web.json_response(speaker.models(page, next_page, variant=variant))

        return handler

    for served in routes_for(speaker.routes, provider.options):
        path = served.at(provider.emulator_prefix)
        if served.kind == "generate":
            app.router.add_route(served.method, path, gen)
        elif served.method == "GET":  # add_get: HEAD is answered too
            app.router.add_get(path, listing(served.variant))
        else:
            app.router.add_route(served.method, path, listing(served.variant))


# -- answering --------------------------------------------------------------------------

def _answer(ask: Ask, profile: Profile, wrong: bool, body: bytes = b"") -> tuple[list[str], str]:
    """The answer's tokens and finish: a canary's answer, a storefront feature's (`chaos.answers`), or filler.

    ``wrong`` (the wrong_answer fault) gives a wrong one: another number, or an answer off the job."""
    answer = solve(ask.prompt)
    if answer is not None:
        if wrong:
            answer = str(int(answer) + 7) if answer.strip().isdigit() else " Atlantis"
        words = [answer, *(" " + w for w in FILLER)]
    elif (composed := respond(ask.prompt, system_prompt(body), wrong=wrong)) is not None:
        # As long as the answer is (up to max_tokens), not the profile's filler length: a cut description
        # would measure the emulator, not the feature.
        words = _TOKEN.findall(composed)
        return words[:ask.max_tokens], ("length" if len(words) > ask.max_tokens else "stop")
    else:
        words = [TEXT[0], *(" " + w for w in TEXT[1:])]
    limit = min(ask.max_tokens, profile.tokens)
    return words[:limit], ("length" if limit == ask.max_tokens else "stop")


async def _generate(emu: Emulator, request: web.Request, route: str, speaker: Speaker, dialect: str,
                    ) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    arrived = loop.time()
    arrived_pc = time.perf_counter()  # uvloop's clock ticks in whole ms; the log wants better
    arrived_ns = time.perf_counter_ns()  # CLOCK_MONOTONIC: comparable with other processes' stamps
    entry: dict[str, Any] = {"at": time.time(), "route": route, "path": request.path,
                             "feature": request.headers.get("x-airisk-feature")}
    emu.log.append(entry)
    try:
        ask = read_ask(dialect, request.path, await request.read(), request.query)
    except BadRequest as exc:
        entry["status"] = 400
        return _bad_request(speaker, str(exc))
    entry["model"] = ask.model
    emu.listings.saw(route, ask.model)
    entry["arrived_mono_ns"] = arrived_ns
    if nonce := _NONCE.search(ask.prompt):
        entry["nonce"] = nonce.group(1)
    plan = emu.faults.plan(RequestInfo(route=route, method=request.method, path=request.path, model=ask.model,
                                       feature=entry["feature"]))
    entry["faults"] = plan.names
    if plan.respond is not None:
        if plan.first_token_delay_s:  # a slow error is still slow
            await asyncio.sleep(plan.first_token_delay_s)
        return await _respond_fault(request, speaker, ask, plan.respond, entry)
    profile = emu.profile(route)
    stream_fault = plan.stream
    # The fault's effect (`chaos.faults.wire`), carried out on the answer the emulator generates:
    # a `Synthesize` replaces its words, a `Break` ends a streamed one early, `Unterminated` leaves
    # its marker out. A non-streamed answer has no stream to break.
    effect = stream_effect(stream_fault, speaker, ask) if stream_fault is not None else None
    answer = speaker
    if isinstance(effect, Synthesize) and not effect.wrong:
        words, finish = list(effect.words), effect.finish
        if effect.voice is not None:
            answer = effect.voice
    else:
        words, finish = _answer(ask, profile, wrong=isinstance(effect, Synthesize), body=await request.read())
    brk = effect if isinstance(effect, Break) else None
    first_at = arrived + profile.sample_ttft(emu.rng) + plan.first_token_delay_s
    gap = plan.token_gap_s if plan.token_gap_s is not None else profile.token_gap_ms / 1000
    entry["status"] = 200
    if not ask.stream:
        await asyncio.sleep(max(0.0, first_at + gap * max(0, len(words) - 1) - loop.time()))
        entry["total_ms"] = round((time.perf_counter() - arrived_pc) * 1000, 3)
        return web.json_response(answer.complete(ask, "".join(words), finish, len(words)))
    # Headers leave with the first token, as from a server that answers once it has one:
    # then a client's time to first byte (curl's time_starttransfer) is the true TTFT.
    await asyncio.sleep(max(0.0, first_at - loop.time()))
    resp = web.StreamResponse(headers={"content-type": speaker.content_type, "cache-control": "no-cache"})
    await resp.prepare(request)
    pending = answer.open(ask)
    for index, word in enumerate(words):
        if brk is not None and index == brk.after:
            if pending:
                await resp.write(pending)
            return await _break_stream(request, resp, brk, stream_fault, entry)
        await asyncio.sleep(max(0.0, first_at + gap * index - loop.time()))
        await resp.write(pending + answer.token(ask, word, index))
        pending = b""
        if index == 0:
            entry["first_token_mono_ns"] = time.perf_counter_ns()
            entry["ttft_ms"] = round((entry["first_token_mono_ns"] - arrived_ns) / 1e6, 3)
            first_at = loop.time()  # later gaps count from when the first token really left
    if pending:
        await resp.write(pending)
    if brk is not None:
        return await _break_stream(request, resp, brk, stream_fault, entry)
    closing = answer.close(ask, finish, len(words))
    if not isinstance(effect, Unterminated):
        closing += answer.terminator(ask, finish, len(words))
    if closing:
        await resp.write(closing)
    await resp.write_eof()
    entry["total_ms"] = round((time.perf_counter() - arrived_pc) * 1000, 3)
    return resp


async def _break_stream(request, resp, brk: Break, fault: Fault | None, entry) -> web.StreamResponse:
    entry["broken"] = fault.type if fault is not None else None
    if brk.stall_s is not None:
        await _hold(request, brk.stall_s)
        _abort(request)
        return resp
    if brk.data:  # malformed_chunk, stream_error
        await resp.write(brk.data)
    await resp.write_eof()  # stream_cut: a clean end with no terminator
    return resp


async def _respond_fault(request, speaker: Speaker, ask: Ask, fault: Fault, entry) -> web.StreamResponse:
    """The emulator's side of `chaos.faults.wire`: hold or drop the socket, or answer the error."""
    effect = response_effect(fault, speaker, ask)
    if isinstance(effect, Hold):
        entry["status"] = None
        await _hold(request, effect.seconds)
        _abort(request)
        return web.Response(status=204)
    if isinstance(effect, Drop):
        entry["status"] = None
        _abort(request, reset=effect.reset)
        return web.Response(status=204)
    entry["status"] = effect.status
    return web.Response(status=effect.status, headers=effect.headers, body=effect.body)


def _bad_request(speaker: Speaker, message: str) -> web.Response:
    status, headers, body = speaker.error("bad_request", status=400, retry_after=None, ask=None, detail=message)
    return web.Response(status=status, headers=headers, body=body)


async def _hold(request: web.Request, seconds: float) -> None:
    """Keep the connection open and silent until the client leaves or `seconds` pass."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(0.05)


def _abort(request: web.Request, *, reset: bool = False) -> None:
    transport = request.transport
    if transport is None:
        return
    if reset:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0 turns close() into an RST: what a crashed load balancer sends.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def serve(emu: Emulator, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                guard: ControlGuard | None = None) -> web.AppRunner:
    """Start serving in the running loop; the caller keeps the runner and calls ``cleanup()``.

    ``guard`` says who may use the control API (`chaos.controlguard`; default: loopback callers)."""
    if guard is not None:
        emu.guard = guard
    runner = web.AppRunner(emu.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True, backlog=1024)
    await site.start()
    return runner


def bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return server.sockets[0].getsockname()[1]
    raise RuntimeError("emulator is not listening")


__all__ = ["DEFAULT_PORT", "Emulator", "Profile", "bound_port", "known_fault_types", "profile_dict", "serve"]
