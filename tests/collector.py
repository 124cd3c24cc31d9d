"""A real OpenTelemetry collector for tests: rotel (``pip install rotel``) on free local ports,
printing every span it receives; :class:`Collector` parses that output back into spans."""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

_FIELD = re.compile(r"^\s*(Trace ID|Parent ID|ID|Name|Kind|Status code|Status message)\s*:\s?(.*)$")
_ATTR = re.compile(r"^\s*-> ([^:]+): (\w+)\((.*)\)$")


@dataclass
class ReceivedSpan:
    """One span as the collector printed it."""

    trace_id: str = ""
    span_id: str = ""
    parent_id: str = ""
    name: str = ""
    kind: str = ""
    status: str = ""
    status_message: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    resource: dict[str, str] = field(default_factory=dict)


def rotel_binary() -> Path | None:
    """The ``rotel-agent`` binary shipped inside the rotel wheel, if installed."""
    spec = importlib.util.find_spec("rotel")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "rotel-agent"
    return binary if binary.exists() else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def parse_spans(text: str) -> list[ReceivedSpan]:
    """Spans from rotel's ``--debug-log traces --debug-log-verbosity detailed`` output."""
    spans: list[ReceivedSpan] = []
    resource: dict[str, str] = {}
    current: ReceivedSpan | None = None
    section = ""
    for raw in text.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", raw)
        stripped = line.strip()
        if stripped.startswith("ResourceSpans #"):
            resource, current, section = {}, None, "resource"
            continue
        if stripped.startswith("Span #"):
            current = ReceivedSpan(resource=resource)
            spans.append(current)
            section = "span"
            continue
        if stripped == "Attributes:" and current is not None:
            section = "attributes"
            continue
        if stripped.startswith("SpanEvent #"):
            section = "event"
            continue
        if current is not None and (match := _FIELD.match(line)) and section == "span":
            key, value = match.groups()
            attr = {"Trace ID": "trace_id", "Parent ID": "parent_id", "ID": "span_id",
                    "Name": "name", "Kind": "kind", "Status code": "status",
                    "Status message": "status_message"}[key]
            setattr(current, attr, value.strip())
            continue
        if section == "event" and current is not None and stripped.startswith("-> Name: "):
            current.events.append(stripped[len("-> Name: "):])
            continue
        if (match := _ATTR.match(line)) is None:
            continue
        key, _kind, value = match.groups()
        if section == "resource":
            resource[key.strip()] = value
        elif section == "attributes" and current is not None:
            current.attributes[key.strip()] = value
    return spans


class Collector:
    """A running rotel agent; ``endpoint`` is its OTLP/HTTP base URL."""

    def __init__(self, binary: Path, workdir: Path, http_port: int | None = None) -> None:
        # ``http_port``: the port of a collector stopped earlier, to restart it in place.
        self.http_port, grpc_port = http_port or free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.http_port}"
        self.output = workdir / "rotel.out"
        self._out = self.output.open("wb")
        self.process = subprocess.Popen(
            [str(binary), "start", "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
             "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}", "--exporter", "blackhole",
             "--debug-log", "traces", "--debug-log-verbosity", "detailed",
             "--pid-file", str(workdir / "rotel.pid"), "--log-file", str(workdir / "rotel.log")],
            stdout=self._out, stderr=subprocess.STDOUT)
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rotel exited: {self.output.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.http_port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("rotel did not start listening")

    def spans(self) -> list[ReceivedSpan]:
        return parse_spans(self.output.read_text(errors="replace"))

    def wait_for_spans(self, count: int, timeout: float = 10.0) -> list[ReceivedSpan]:
        """Spans received so far, waiting until there are at least ``count``."""
        deadline = time.monotonic() + timeout
        spans = self.spans()
        while len(spans) < count and time.monotonic() < deadline:
            time.sleep(0.05)
            spans = self.spans()
        return spans

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._out.close()


def _runnable(binary: Path) -> str | None:
    try:
        result = subprocess.run([str(binary), "--version"], check=False, capture_output=True,
                                timeout=10)
    except OSError as exc:
        return f"rotel-agent cannot run on this machine: {exc}"
    if result.returncode != 0:
        return f"rotel-agent --version failed: {result.stderr.decode(errors='replace')[:200]}"
    return None


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """A fresh rotel collector per test (skips only when its binary truly cannot run)."""
    binary = rotel_binary()
    if binary is None:
        pytest.skip("rotel is not installed (pip install rotel)")
    problem = _runnable(binary)
    if problem is not None:
        pytest.skip(problem)
    running = Collector(binary, tmp_path)
    yield running
    running.stop()
