"""schemathesis against the live app's /api/v1/openapi.json: no 500, answers as documented.

Each operation is tried on its own, and then in sequences that follow the document's OpenAPI
links (a dataset from the list, then its events, then their next page, ...).
"""

from __future__ import annotations

import psycopg
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.errors import format_transition
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.database import libpq_url
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

STATEFUL = {
    # The links the document declares, and only those: schemathesis would otherwise infer links
    # of its own from the schemas, and the stateful test could pass with ours broken.
    "phases": {"stateful": {"inference": {"algorithms": []}}},
    # Chains of valid calls; test_api_honours_its_openapi_document sends the invalid ones.
    "generation": {"mode": "positive"},
}
MIN_LINKS = 13  # list, push (two answers), describe, events and series: see app/api_spec.py


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
    rows = [  # more than a page at the default limit, so that there is a next page to follow
        {
            "time": f"2024-05-01T{10 + minute // 60}:{minute % 60:02d}:00Z",
            "sensor": "ab"[minute % 2],
            "value": minute,
        }
        for minute in range(150)
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


def test_every_link_leads_to_an_operation_and_its_parameters(client):
    document = client.get("/api/v1/openapi.json").get_json()
    operations = operations_by_id(document)
    links = list(document_links(document))
    assert len(links) >= MIN_LINKS

    for method, path, status, name, link in links:
        where = f"{method} {path} [{status}] {name}"
        assert link.get("operationId") in operations, where
        source = document["paths"][path][method]
        target = operations[link["operationId"]][2]
        for parameter, expression in link["parameters"].items():
            location, _, parameter_name = parameter.partition(".")
            assert (parameter_name, location) in parameters_of(target), f"{where}: {parameter}"
            if expression.startswith("$request."):
                location, _, parameter_name = expression.removeprefix("$request.").partition(".")
                assert (parameter_name, location) in parameters_of(source), f"{where}: {expression}"
            else:
                assert expression.startswith("$response.body#/"), f"{where}: {expression}"
                answer = source["responses"][status]["content"]["application/json"]["schema"]
                pointer = expression.removeprefix("$response.body#/")
                assert schema_at(document, answer, pointer) is not None, f"{where}: {expression}"


def test_api_holds_along_its_links(app, bearer, database_url):
    config = SchemathesisConfig.from_dict(STATEFUL)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app, config=config)
    operations = operations_by_id(schema.raw_schema)
    links = list(document_links(schema.raw_schema))
    assert len(links) >= MIN_LINKS
    links_from_reads = {
        format_transition(
            label(method, path), status, name, label(*operations[link["operationId"]][:2])
        )
        for method, path, status, name, link in links
        if method == "get"
    }
    answered_ok: set[str] = set()

    class FollowTheLinks(schema.as_state_machine()):
        def setup(self):
            # Every sequence starts from the same data: Hypothesis replays the start of one
            # sequence in others and fails as flaky if the answers (say, the datasets) differ.
            with psycopg.connect(libpq_url(database_url), autocommit=True) as connection:
                connection.execute("DELETE FROM datasets WHERE name <> 'sensors'")

        def get_call_kwargs(self, case):
            return {"headers": bearer}

        def step(self, step_input):
            output = super().step(step_input)
            link = step_input.transition
            if link is not None and step_input.is_applied and output.response.status_code < 300:
                answered_ok.add(link.id)
            return output

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response,
                checks=CHECKS,
                headers=bearer,
                transport_kwargs=kwargs,
                recorder=self.recorder,
            )

    FollowTheLinks.run(
        settings=settings(
            max_examples=80,  # sequences of up to 10 calls: about 12 s
            stateful_step_count=10,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
            phases=[Phase.generate],  # as schemathesis runs state machines: no shrinking
        )
    )

    # Every link from a read led to a good answer at least once. A push succeeds only when its
    # random dataset name happens to be valid, so the links from a push are not counted on.
    assert links_from_reads - answered_ok == set()


def operations_by_id(document):
    return {
        operation["operationId"]: (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


def label(method, path):
    """Name an operation as schemathesis does: ``GET /api/v1/datasets``."""
    return f"{method.upper()} {path}"


def document_links(document):
    """Yield each link of the document as (method, path, status, link name, link)."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                for name, link in answer.get("links", {}).items():
                    yield method, path, status, name, link


def parameters_of(operation):
    return {(parameter["name"], parameter["in"]) for parameter in operation["parameters"]}


def schema_at(document, schema, pointer):
    """Return the schema of the value at ``pointer`` in what ``schema`` describes, or None."""
    for token in pointer.split("/"):
        while "$ref" in schema:
            schema = document["components"]["schemas"][schema["$ref"].rpartition("/")[2]]
        if token.isdigit() and "items" in schema:
            schema = schema["items"]
        elif token in schema.get("properties", {}):
            schema = schema["properties"][token]
        else:
            return None
    return schema
