"""``python -m examples.storefront [--host 127.0.0.1] [--port 8600]``: serve the storefront with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from examples.storefront.app import Settings, create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.storefront", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"storefront: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    print(f"storefront: openai={settings.openai_base_url} anthropic={settings.anthropic_base_url} "
          f"local={settings.local_base_url} timeout={settings.ai_timeout:g}s", file=sys.stderr)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
