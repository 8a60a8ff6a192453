"""``mock-server serve [--host 127.0.0.1] [--port N] [--seed N]``: the mock under uvicorn.

The CLI only builds a :class:`MockConfig` and hands it to :func:`create_app`; exit codes are
decided here and nowhere else.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn

from mock_server.app import create_app
from mock_server.config import MockConfig


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mock-server``."""
    parser = argparse.ArgumentParser(prog="mock-server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the mock over HTTP")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    serve.add_argument("--seed", type=int, default=0, help="seed of every generated answer (default 0)")
    serve.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mock-server``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    app = create_app(MockConfig(seed=args.seed))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
