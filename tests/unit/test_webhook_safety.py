"""A webhook delivery counts only when the configured URL answered 2xx: a redirect is a failure
(never followed), and a URL that is not http(s) is refused when the configuration loads."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from mdm_orchestration.config import ConfigError, WebhookTarget, load_hub_config
from mdm_orchestration.syndication.messages import Message
from mdm_orchestration.syndication.transports import DeliveryError, WebhookTransport

CONFIG_DIR = Path(__file__).resolve().parents[2] / "mdm_orchestration" / "defaults"


class _Server:
    """A loopback HTTP server recording every request; ``answer`` decides the reply."""

    def __init__(self, answer: tuple[int, dict[str, str]]) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.requests.append((self.command, self.path, dict(self.headers)))
                status, headers = answer
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _any

            def log_message(self, *_args: object) -> None:
                return None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def elsewhere() -> Iterator[_Server]:
    server = _Server((200, {}))
    yield server
    server.close()


def _message() -> Message:
    return Message(
        event_id="00000000-0000-0000-0000-000000000001",
        event_type="created",
        golden_id="G0000000000001",
        version=1,
        seq=1,
        occurred_at="2026-12-01T00:00:00+00:00",
        party_type="person",
        lifecycle="customer",
        attributes={"given_name": "Ada"},
        related=[],
    )


def test_a_redirect_is_a_failed_delivery_and_is_not_followed(elsewhere):
    redirector = _Server((302, {"Location": elsewhere.url}))
    try:
        transport = WebhookTransport(
            WebhookTarget(url=redirector.url, headers={"Authorization": "Bearer secret"})
        )
        with pytest.raises(DeliveryError) as failed:
            transport.send([_message()], "batch")
    finally:
        redirector.close()
    assert failed.value.delivered == 0
    assert "302" in str(failed.value)
    assert [r[0] for r in redirector.requests] == ["POST"]
    # Nothing, and in particular no Authorization header, reached the other address.
    assert elsewhere.requests == []


def test_a_2xx_answer_is_delivered(elsewhere):
    WebhookTransport(WebhookTarget(url=elsewhere.url)).send([_message()], "batch")
    assert [r[0] for r in elsewhere.requests] == ["POST"]


@pytest.mark.parametrize(
    "url", ["file:///tmp/outbox", "ftp://127.0.0.1/x", "data:,hello", "http:///no-host"]
)
def test_a_webhook_url_that_is_not_http_is_refused_at_load(tmp_path, url):
    folder = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, folder)
    subscriptions = yaml.safe_load((folder / "subscriptions.yaml").read_text(encoding="utf-8"))
    subscriptions["subscribers"]["crm_hook"] = {
        "transport": "webhook",
        "webhook": {"url": url},
    }
    (folder / "subscriptions.yaml").write_text(yaml.safe_dump(subscriptions), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_hub_config(folder)
    message = str(refused.value)
    assert "subscriptions.yaml" in message
    assert "subscriber 'crm_hook'" in message
    assert "webhook.url" in message


def test_a_url_from_the_environment_is_checked_once_expanded(monkeypatch):
    monkeypatch.setenv("MDM_TEST_HOOK_URL", "file:///tmp/outbox")
    with pytest.raises(DeliveryError, match="http:// or https://"):
        WebhookTransport(WebhookTarget(url="${MDM_TEST_HOOK_URL}"))
