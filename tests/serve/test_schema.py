"""Schemathesis against the served OpenAPI schema: generated requests never make the server fail.

Bounded (a few examples per operation) so it runs in seconds; the check is ``not_a_server_error``:
whatever the generator sends, the answer is a success or a 4xx problem, never a 5xx.
"""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is missing (pip install 'cleanplate[dev]')")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402


@pytest.fixture
def api_schema(shared_server):
    return schemathesis.openapi.from_url(shared_server.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_generated_requests_never_fail_the_server(case) -> None:
    response = case.call(timeout=60)
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400:  # every error is a problem body
        content_type = (response.headers.get("content-type") or [""])[0]
        assert content_type.startswith("application/problem+json"), (response.status_code, response.text[:300])
