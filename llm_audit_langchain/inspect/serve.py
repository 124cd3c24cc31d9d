"""``llm-audit ui``: the report's pages served live from a directory of JSONL files or a store
(PostgreSQL, MongoDB), on 127.0.0.1 by default (standard library HTTP server; no collector,
nothing stored).

Routes: ``/`` the report (it polls ``/version`` and reloads when new events arrive, keeping its
filters), ``/version`` a fingerprint of what was read, ``/trace/<id>`` one trace's view. The
directory is read again only when its files' fingerprint changes; a store has no such cheap
fingerprint, so it is read again at most every ``refresh_s`` seconds and the fingerprint is
that of the event ids read.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ..events import AuditEvent
from ..replay.reading import jsonl_files
from .stores import is_store_uri, open_store


class LiveReport:
    """The pages of one directory or store URI, rebuilt when what it holds changes
    (thread-safe). ``table``: the store's table or collection."""

    def __init__(self, directory: str | os.PathLike[str], *,
                 chain_dir: str | os.PathLike[str] | None = None, title: str = "LLM audit",
                 table: str = "llm_audit", refresh_s: float = 10.0) -> None:
        self.source = os.fspath(directory)
        self.is_store = is_store_uri(self.source)
        self.directory = Path(directory)
        self.chain_dir = chain_dir if chain_dir is not None or self.is_store else directory
        self.title, self.table, self.refresh_s = title, table, refresh_s
        self._lock = threading.Lock()
        self._store_lock = threading.Lock()
        self._version = ""
        self._page = ""
        self._traces: Any = None
        self._store_events: list[AuditEvent] = []
        self._store_version = ""
        self._store_read_at: float | None = None

    def version(self) -> str:
        """A fingerprint of the files (names, sizes, modification times), or of the event ids
        last read from the store."""
        if self.is_store:
            return self._read_store()
        digest = hashlib.sha256()
        for file in jsonl_files(self.directory):
            stat = file.stat()
            digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        return digest.hexdigest()[:16]

    def _read_store(self) -> str:
        with self._store_lock:
            now = time.monotonic()
            if self._store_read_at is None or now - self._store_read_at >= self.refresh_s:
                store = open_store(self.source, table=self.table)
                try:
                    events = list(store.events())
                finally:
                    store.close()
                digest = hashlib.sha256()
                for event in events:
                    digest.update(event.event_id.encode() + b";")
                self._store_events, self._store_version = events, digest.hexdigest()[:16]
                self._store_read_at = now
            return self._store_version

    def _refresh(self) -> str:
        from .html.report import render_report
        from .traces import Traces

        version = self.version()
        with self._lock:
            if version != self._version:
                self._traces = (Traces.from_events(self._store_events) if self.is_store
                                else Traces.from_jsonl(self.directory))
                self._page = render_report(self._traces, chain_dir=self.chain_dir,
                                           title=self.title, live_version=version)
                self._version = version
            return version

    def page(self) -> str:
        """The whole report, current."""
        self._refresh()
        return self._page

    def trace_page(self, trace_id: str) -> str | None:
        """One trace's view as a page, or None for an unknown id."""
        from .html.view import esc, trace_view

        self._refresh()
        try:
            trace = self._traces[trace_id]
        except KeyError:
            return None
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>trace '
                f'{esc(trace.trace_id)}</title></head><body><p><a href="/">← all traces</a></p>'
                f"{trace_view(trace)}</body></html>")


def _handler(live: LiveReport) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "llm-audit-ui"

        def do_GET(self) -> None:
            path = unquote(urlsplit(self.path).path)
            if path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, live.page(), "text/html")
            elif path == "/version":
                self._send(HTTPStatus.OK, live.version(), "text/plain")
            elif path.startswith("/trace/"):
                page = live.trace_page(path.removeprefix("/trace/"))
                if page is None:
                    self._send(HTTPStatus.NOT_FOUND, "no such trace", "text/plain")
                else:
                    self._send(HTTPStatus.OK, page, "text/html")
            else:
                self._send(HTTPStatus.NOT_FOUND, "not found", "text/plain")

        def _send(self, status: HTTPStatus, text: str, kind: str) -> None:
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            # the pages carry their own inline style and script, nothing from elsewhere
            self.send_header("Content-Security-Policy",
                             "default-src 'none'; style-src 'unsafe-inline'; "
                             "script-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # quiet: a browser polls /version every two seconds

    return Handler


def make_server(live: LiveReport, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A server for ``live`` (call ``serve_forever()``; ``server_address`` has the real port)."""
    server = ThreadingHTTPServer((host, port), _handler(live))
    server.daemon_threads = True
    return server
