"""A deliberately naive HTTP pass-through: the baseline row of bench/proxy_overhead.py.

Starlette + one shared `httpx.AsyncClient`, every path forwarded unchanged to the upstream,
the answer streamed back with `StreamingResponse` over `aiter_raw()`, run under uvicorn with
its defaults (access log off): the straightforward way someone would write such a proxy.
No fault logic at all, so whatever it costs is the price of the design, not of faults.

Usage: .venv/bin/python bench/naive_proxy.py --port 8001 --upstream http://127.0.0.1:8000
"""

from __future__ import annotations

import argparse
import contextlib

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}


def make_app(upstream: str) -> Starlette:
    state: dict[str, httpx.AsyncClient] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        async with httpx.AsyncClient(base_url=upstream, timeout=60) as client:
            state["client"] = client
            yield

    async def forward(request: Request) -> StreamingResponse:
        client = state["client"]
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        req = client.build_request(request.method, request.url.path, params=request.query_params,
                                   headers=headers, content=await request.body())
        upstream = await client.send(req, stream=True)
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP}
        return StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code, headers=out,
                                 background=BackgroundTask(upstream.aclose))

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8000")
    args = parser.parse_args()
    uvicorn.run(make_app(args.upstream.rstrip("/")), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)
