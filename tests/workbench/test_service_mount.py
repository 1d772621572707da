"""The workbench inside the service's application (``mdm serve``): the same router, the hub
engine and configuration from the service's state."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.workbench.conftest import PASSWORD, service_app

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def test_the_service_serves_the_workbench(workbench_hub, tmp_path):
    app = service_app(workbench_hub, tmp_path / "workbench.key")
    with TestClient(app, follow_redirects=False) as client:
        assert client.get("/workbench/review").status_code == 303
        form = client.get("/workbench/login")
        assert form.status_code == 200
        answer = client.post(
            "/workbench/login",
            data={
                "username": "stella",
                "password": PASSWORD,
                "csrf_token": CSRF.search(form.text).group(1),
            },
        )
        # The service's middleware must let the workbench's HTML forms through (it refuses
        # bodies other than JSON for its API).
        assert answer.status_code == 303, answer.text
        page = client.get("/workbench/review")
        assert page.status_code == 200 and "Review queue" in page.text
        # The API is unchanged beside it: still an API key needed.
        assert client.get("/v1/golden/G0000000001").status_code == 401
