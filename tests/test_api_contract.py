"""schemathesis against the live app's /api/v1/openapi.json: no 500, answers as documented."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.extensions import db
from app.tokens import create_token
from app.users import get_user

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


@pytest.fixture
def bearer(app, auth):
    """An analyst's token, so that pushes are tried as well as reads."""
    auth.create("contract@example.com", "analyst")
    with app.app_context():
        token = create_token(get_user("contract@example.com"), "contract")
        db.session.remove()
    headers = {"Authorization": f"Bearer {token}"}
    rows = [
        {"time": f"2024-05-01T10:{minute:02d}:00Z", "sensor": "ab"[minute % 2], "value": minute}
        for minute in range(30)
    ]
    loaded = app.test_client().post("/api/v1/datasets/sensors/events", json=rows, headers=headers)
    assert loaded.status_code == 201
    return headers


# schemathesis 4.32's pytest loader (``schemathesis.pytest.from_fixture``) reads a private
# attribute that pytest 9 no longer has, so each operation's strategy is driven here instead.
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_honours_its_openapi_document(api_schema, bearer, mode):
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 7

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=50,  # about 15 s for every operation, both modes
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def honours(case):
            case.call_and_validate(headers=bearer, checks=CHECKS)
            if case.method == "GET" and case.path_parameters and "name" in case.path_parameters:
                case.path_parameters["name"] = "sensors"  # a dataset that exists, as well
                case.call_and_validate(headers=bearer, checks=CHECKS)

        honours()
