"""Bad input the control plane once answered with 500: each is a 4xx problem that says what
to fix, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from controlplane.kernel import names
from tests.conftest import AuthHeaders, wait_for_operation

EMAIL = "owner@example.com"


def _site(client: TestClient, admin: dict[str, str]) -> None:
    client.post("/v1/tenants", json={"id": "acme", "name": "Acme"}, headers=admin)
    answer = client.post(
        "/v1/tenants/acme/sites", json={"name": "crumbs", "admin_email": EMAIL}, headers=admin
    )
    assert answer.status_code == 202, answer.text
    wait_for_operation(client, answer.json()["operation"]["id"], admin)


@pytest.mark.parametrize("endpoint", ["logs", "metrics"])
@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"since": "3000000d"}, "past year 1"),
        ({"since": "999999999999w"}, "past year 1"),
        ({"since": "9999999999999999999999d"}, "neither ISO 8601"),
        ({"until": "0001-01-01T00:00:00+05:00"}, "out of range"),
        ({"since": "1h", "until": "9999-12-31T23:59:59-05:00"}, "out of range"),
    ],
)
def test_times_out_of_range_answer_422(
    client: TestClient, auth: AuthHeaders, endpoint: str, params: dict[str, Any], words: str
) -> None:
    admin = auth("admin")
    _site(client, admin)
    answer = client.get(f"/v1/tenants/acme/sites/crumbs/{endpoint}", params=params, headers=admin)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert words in answer.json()["detail"]


def test_a_trailing_slash_is_a_404_that_names_the_path_never_a_redirect(
    client: TestClient, auth: AuthHeaders
) -> None:
    admin = auth("admin")
    answer = client.get(
        "/v1/tenants/", headers={**admin, "Host": "evil.example"}, follow_redirects=False
    )
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert answer.json()["detail"] == (
        "/v1/tenants/ does not exist; paths take no trailing slash: /v1/tenants"
    )
    assert client.get("/v1/tenants", headers=admin).status_code == 200


@pytest.mark.parametrize("bad", ["acme\n", "FOO\n"])
def test_a_trailing_newline_is_not_a_valid_name(bad: str) -> None:
    with pytest.raises(ValueError, match="must"):
        names.check_tenant_id(bad) if bad.islower() else names.check_env_name(bad)
