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
    monkeypatch.setenv("MDM_SECRET_TEST_HOOK_URL", "file:///tmp/outbox")
    with pytest.raises(DeliveryError, match="http:// or https://"):
        WebhookTransport(WebhookTarget(url="${MDM_SECRET_TEST_HOOK_URL}"))


# --- ${VAR}: only MDM_SECRET_* names expand (issue 17, defect 3) -----------------------------


def _load_with(tmp_path: Path, name: str, subscriber: dict) -> None:
    folder = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, folder)
    subscriptions = yaml.safe_load((folder / "subscriptions.yaml").read_text(encoding="utf-8"))
    subscriptions["subscribers"][name] = subscriber
    (folder / "subscriptions.yaml").write_text(yaml.safe_dump(subscriptions), encoding="utf-8")
    load_hub_config(folder)


@pytest.mark.parametrize(
    ("subscriber", "field"),
    [
        (
            {
                "transport": "webhook",
                "webhook": {
                    "url": "https://hooks.example/in",
                    "headers": {"X-Leak": "${DAGSTER_PG_URL}"},
                },
            },
            "webhook.headers.X-Leak",
        ),
        (
            {"transport": "webhook", "webhook": {"url": "https://hooks.example/${HOME}"}},
            "webhook.url",
        ),
        (
            {"transport": "webhook", "webhook": {"url": "https://hooks.example/$PATH"}},
            "webhook.url",
        ),
        ({"transport": "sql", "sql": {"url": "${DAGSTER_PG_URL}", "table": "t"}}, "sql.url"),
        ({"transport": "file", "file": {"folder": "${HOME}/out"}}, "file.folder"),
    ],
)
def test_a_variable_outside_mdm_secret_is_refused_at_load(tmp_path, monkeypatch, subscriber, field):
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql://dagster:pw@db/dagster")
    with pytest.raises(ConfigError) as refused:
        _load_with(tmp_path, "leaky", subscriber)
    message = str(refused.value)
    assert "subscriptions.yaml" in message
    assert "subscriber 'leaky'" in message
    assert field in message
    assert "MDM_SECRET_" in message
    assert "postgresql://" not in message  # the value itself never appears


def test_an_mdm_secret_variable_expands(tmp_path, monkeypatch, elsewhere):
    monkeypatch.setenv("MDM_SECRET_HOOK_TOKEN", "Bearer s3cret")
    monkeypatch.setenv("MDM_SECRET_HOOK_URL", elsewhere.url)
    _load_with(
        tmp_path,
        "crm_hook",
        {
            "transport": "webhook",
            "webhook": {
                "url": "${MDM_SECRET_HOOK_URL}",
                "headers": {"Authorization": "${MDM_SECRET_HOOK_TOKEN}", "X-Cost": "$$5"},
            },
        },
    )
    target = WebhookTarget(
        url="${MDM_SECRET_HOOK_URL}",
        headers={"Authorization": "${MDM_SECRET_HOOK_TOKEN}", "X-Cost": "$$5"},
    )
    WebhookTransport(target).send([_message()], "batch")
    headers = elsewhere.requests[0][2]
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["X-Cost"] == "$5"


def test_the_transport_refuses_other_variables_too(monkeypatch):
    """Defence in depth: a target built without validation still never expands other names."""
    monkeypatch.setenv("DAGSTER_PG_URL", "postgresql://dagster:pw@db/dagster")
    target = WebhookTarget.model_construct(
        url="https://hooks.example/in", timeout_seconds=10.0, headers={"X": "${DAGSTER_PG_URL}"}
    )
    with pytest.raises(DeliveryError, match="MDM_SECRET_"):
        WebhookTransport(target)


def test_an_unset_mdm_secret_variable_fails_the_delivery(monkeypatch):
    monkeypatch.delenv("MDM_SECRET_NOT_SET", raising=False)
    with pytest.raises(DeliveryError, match="MDM_SECRET_NOT_SET"):
        WebhookTransport(WebhookTarget(url="https://hooks.example/${MDM_SECRET_NOT_SET}"))
