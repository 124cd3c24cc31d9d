"""``llm-audit ui``: a live trace browser on 127.0.0.1 over a directory of JSONL files or a
store (PostgreSQL, MongoDB)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import EXIT_OK, CliError, default_dir, existing_dir, shown, store_options, store_uri


def _ui(args: argparse.Namespace) -> int:
    from ...errors import AuditError
    from ..serve import LiveReport, make_server

    source = store_uri(args)
    if source:
        directory: object = shown(source)
        live = LiveReport(source, chain_dir=args.chain, title=f"LLM audit: {directory}",
                          table=args.table)
        try:
            live.version()  # a wrong URI or an unreachable store fails now, not in the browser
        except AuditError:
            raise
        except Exception as exc:  # the driver's connection or query error
            raise CliError(f"cannot read {directory}: {type(exc).__name__}: {exc}") from None
    else:
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
    store_options(ui)
    ui.add_argument("--chain", metavar="DIR", help="audit chain directory to verify (default: DIR)")
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to bind (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    ui.set_defaults(func=_ui)
