"""Schemathesis over /api/v1/openapi.json: every JSON operation in the spec, generated inputs, signed in.

Checks: no 5xx, status codes and content types the spec documents, response bodies matching the spec's schemas.
(The schema's strategies are driven from inside one test because schemathesis' pytest fixture loader does not run
on this pytest version.)
"""

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from tests.conftest import PASSWORD, create_user  # noqa: E402

from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,  # noqa: E402
                                               status_code_conformance)

# Structural checks. ("positive data acceptance" is left out: a well-formed but unknown e-mail token is *meant* to be
# refused with 400, which that check would call a failure.)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Operations that would end the shared session for the examples after them run without the bearer token.
ENDS_SESSION = {("POST", "/api/v1/logout"), ("POST", "/api/v1/sessions/revoke-all"), ("DELETE", "/api/v1/me"),
                ("POST", "/api/v1/password/change")}


def test_every_api_operation_conforms_and_never_5xx(make_app):
    # Generous throttles: the fuzzer is a heavy legitimate client here; the limiter has its own tests.
    app = make_app(throttle_pair_limit=100_000, throttle_ip_limit=100_000, throttle_prefix_limit=100_000,
                   spray_min_failures=100_000, password_spray_accounts=100_000, account_lockout_threshold=100_000,
                   account_failure_cap=100, throttle_unfamiliar_per_second=100_000)
    create_user(app)
    token = app.test_client().post("/api/v1/login", json={"email": "alice@example.com", "password": PASSWORD}
                                   ).json["session_token"]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [op.ok() for op in schema.get_all_operations()]
    assert len(operations) >= 12
    for op in operations:
        auth = (op.method.upper(), op.path) not in ENDS_SESSION

        @given(case=op.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            headers = {"Authorization": f"Bearer {token}"} if auth else {}
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
