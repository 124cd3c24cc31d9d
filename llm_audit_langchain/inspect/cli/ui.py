"""``llm-audit ui``: a live trace browser on 127.0.0.1 over a directory of JSONL files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import EXIT_OK, CliError, default_dir, existing_dir


def _ui(args: argparse.Namespace) -> int:
    from ..serve import LiveReport, make_server

    directory = existing_dir(args.dir)
    live = LiveReport(directory, chain_dir=args.chain, title=f"LLM audit: {directory}")
    try:
        server = make_server(live, args.host, args.port)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    host, port = server.server_address[:2]
    sys.stdout.write(f"llm-audit ui: serving {directory} on http://{host!s}:{port} "
                     "(Ctrl-C stops)\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Register ``llm-audit ui``."""
    ui = commands.add_parser("ui", help="browse traces live in a browser (local HTTP server)")
    ui.add_argument("--dir", default=default_dir(), help="JSONL directory ($AUDIT_LOG_DIR)")
    ui.add_argument("--chain", metavar="DIR", help="audit chain directory to verify (default: DIR)")
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    ui.set_defaults(func=_ui)
