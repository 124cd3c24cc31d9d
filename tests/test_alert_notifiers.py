"""Notifiers against real receivers: a webhook on a local HTTP server (signature, retries, giving
up), Amazon SNS on moto's server; and a notifier that hangs never holds up the engine."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from alert_streams import Clock, Runs, replay

from llm_audit_langchain.alerts import (
    Alert,
    AlertEngine,
    AlertRule,
    CallbackNotifier,
    SnsNotifier,
    WebhookNotifier,
)
from llm_audit_langchain.alerts.notifiers import SIGNATURE_HEADER

SECRET = "s3cret-shared-with-the-receiver"


@pytest.fixture(scope="module")
def runs() -> Runs:
    return Runs.record()


def errors_engine(clock: Clock, notifier: Any) -> AlertEngine:
    rule = AlertRule("errors", "error_rate", 0.05, window_s=60, severity="critical",
                     labels={"team": "agents"})
    return AlertEngine([rule], builtin=False, clock=clock, notifiers=[notifier])


class Receiver(ThreadingHTTPServer):
    """A webhook receiver: answers ``failures`` 500s first, then 204; keeps what it got."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[tuple[Any, bytes]] = []
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers, body))  # case-insensitive names
        failing = len(self.server.received) <= self.server.failures
        self.send_response(500 if failing else 204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(failures=getattr(request, "param", 0))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("receiver", [2], indirect=True)
def test_webhook_is_signed_and_retried_on_500(receiver: Receiver, runs: Runs) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/alerts"
    webhook = WebhookNotifier(url, secret=SECRET, attempts=3, backoff_s=0.01)
    clock = Clock()
    engine = errors_engine(clock, webhook)
    failing = replay(engine, runs.llm_error, clock)
    engine.check(clock.now + 5)
    assert engine.flush_notifications(timeout=10)
    assert len(receiver.received) == 3 and webhook.retries == 2  # two 500s, then accepted
    headers, body = receiver.received[-1]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers[SIGNATURE_HEADER], expected)
    alert = json.loads(body)
    assert alert["rule"] == "errors" and alert["state"] == "fired"
    assert alert["labels"] == {"team": "agents"} and alert["example_trace_ids"] == [failing]
    assert engine.stats()["notifiers"]["delivered"] == {"webhook": 1}


@pytest.mark.parametrize("receiver", [100], indirect=True)
def test_webhook_gives_up_after_its_attempts_and_counts_it(receiver: Receiver,
                                                           runs: Runs) -> None:
    url = f"http://127.0.0.1:{receiver.server_address[1]}/alerts"
    clock = Clock()
    engine = errors_engine(clock, WebhookNotifier(url, attempts=3, backoff_s=0.01))
    replay(engine, runs.llm_error, clock)
    engine.check(clock.now + 5)
    engine.check(clock.now + 100)  # resolved: a second notification
    assert engine.flush_notifications(timeout=10)
    assert len(receiver.received) == 6
    assert engine.stats()["notifiers"]["failed"] == {"webhook": 2}
    assert SIGNATURE_HEADER not in receiver.received[0][0]  # no secret, no signature


def test_a_hanging_notifier_never_blocks_the_engine(runs: Runs) -> None:
    release = threading.Event()
    entered = threading.Event()

    def stuck(alert: Alert) -> None:
        entered.set()
        release.wait(30)

    clock = Clock()
    engine = errors_engine(clock, CallbackNotifier(stuck))
    engine.dispatcher._queue_size = 3  # small, to show the bound
    try:
        for cycle in range(4):  # fired/resolved pairs while the notifier is stuck
            t = clock.now + cycle * 2_000
            replay(engine, runs.llm_error, clock, at=t)
            assert engine.check(t + 5)
            assert engine.check(t + 100)
            entered.wait(5)
        stats = engine.stats()["notifiers"]
        assert stats["queued"] == 3 and stats["dropped"] == 4  # 8 made, 1 in hand, 3 queued
    finally:
        release.set()
    assert engine.flush_notifications(timeout=10)
    assert engine.stats()["notifiers"]["delivered"] == {"callback": 4}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def moto_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    binary = shutil.which("moto_server") or os.path.join(os.path.dirname(
        os.path.realpath(__import__("sys").executable)), "moto_server")
    if not os.path.exists(binary):
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    process = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("moto_server did not start")
                time.sleep(0.1)
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_REGION", "us-east-1"), ("AWS_DEFAULT_REGION", "us-east-1")):
            monkeypatch.setenv(name, value)
        yield url
    finally:
        process.kill()
        process.wait(10)


def test_sns_publishes_each_announcement(moto_url: str, runs: Runs) -> None:
    import boto3

    sns = boto3.client("sns", endpoint_url=moto_url)
    sqs = boto3.client("sqs", endpoint_url=moto_url)
    topic = sns.create_topic(Name="llm-audit-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="on-call")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    clock = Clock()
    engine = errors_engine(clock, SnsNotifier(topic, endpoint_url=moto_url))
    replay(engine, runs.llm_error, clock)
    engine.check(clock.now + 5)
    assert engine.flush_notifications(timeout=30)
    assert engine.stats()["notifiers"]["delivered"] == {"sns": 1}
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                   WaitTimeSeconds=2).get("Messages", [])
    [envelope] = [json.loads(m["Body"]) for m in messages]
    alert = json.loads(envelope["Message"])
    assert alert["rule"] == "errors" and alert["state"] == "fired"
    assert envelope["Subject"].startswith("[critical] errors FIRING")
    assert envelope["MessageAttributes"]["severity"]["Value"] == "critical"


def test_handler_shutdown_delivers_the_queued_notifications(runs: Runs) -> None:
    from llm_audit_langchain import AuditCallbackHandler, MemoryExporter

    delivered: list[str] = []

    def slow(alert: Any) -> None:
        time.sleep(0.3)  # a notifier still busy when the script ends
        delivered.append(alert.rule.name)

    clock = Clock()
    engine = errors_engine(clock, CallbackNotifier(slow))
    handler = AuditCallbackHandler([MemoryExporter()], alerts=engine)
    replay(engine, runs.llm_error, clock)
    engine.check(clock.now + 5)
    assert handler.shutdown(timeout=10)
    assert delivered == ["errors"]
