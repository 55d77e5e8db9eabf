"""The API's request and response models, and the OpenAPI document generated from them.

SpecTree validates each view's query string and body against these pydantic models and builds
``/api/v1/openapi.json`` from the very same models, so the document cannot drift from what
the views accept. A request that fails validation answers 400 in the API's error shape. The
document also holds OpenAPI links, how one answer leads to the next request; SpecTree cannot
declare them, so ``add_links`` puts ``OPERATION_LINKS`` into the document it generates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from flask import abort, current_app, jsonify
from pydantic import BaseModel, ConfigDict, Field, RootModel
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import SecureType
from spectree.plugins.flask_plugin import FlaskPlugin

from app.charts import MAX_FILTERS

VALIDATION_STATUS = 400


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error the API answers: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


def _reject_invalid(
    request: Any, response: Any, error: Exception | None, instance: Any, adapter: Any
) -> None:
    if error is None:
        return
    problems: list[dict[str, Any]] = getattr(error, "errors", list)()
    message = "; ".join(
        f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg')}"
        for problem in problems
    )
    body = jsonify({"error": {"code": "invalid_request", "message": message or str(error)}})
    body.status_code = VALIDATION_STATUS
    abort(body)


class ResponseCheckingPlugin(FlaskPlugin):
    """SpecTree's Flask plugin, checking answers against their models only where configured.

    Requests are always validated. Re-reading every answer through its pydantic model took
    about a tenth of a query API read's Python time (the JSON parsed again and validated),
    and in production a model mismatch would turn a good answer into a 500; so answers are
    checked when ``INSIGHTWAVE_VALIDATE_RESPONSES`` is on and always under tests, where the
    contract tests (schemathesis) also check every answer against the OpenAPI document.
    """

    def validate_response(
        self, resp: Any, resp_model: Any, skip_validation: bool, force_resp_serialize: bool
    ) -> Any:
        config = current_app.config["INSIGHTWAVE"]
        if not (config.validate_responses or config.testing):
            resp_model = None
        return super().validate_response(resp, resp_model, skip_validation, force_resp_serialize)


class LinkedSpecTree(SpecTree):
    """SpecTree whose document also says how the operations chain (see ``OPERATION_LINKS``)."""

    def _generate_spec(self) -> dict[str, Any]:
        # SpecTree (3.0) has no way to declare OpenAPI links. Its ``spec`` property caches what
        # this returns, so whatever reads ``spec.spec`` gets the document with its links.
        return add_links(super()._generate_spec(), OPERATION_LINKS)


spec = LinkedSpecTree(
    "flask",
    backend=ResponseCheckingPlugin,
    mode="strict",  # only views that declare their models; Dash's routes are not the API
    title="Insight-Wave API",
    version="1",
    path="api/v1/docs",
    description=(
        "Read datasets and events, aggregate them over time, push events and open the live "
        "feed. Authenticate with `Authorization: Bearer <token>` (`insightwave tokens create`)."
    ),
    security_schemes=[
        SecurityScheme(
            name="bearer", data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer")
        ),
    ],
    security={"bearer": []},
    validation_error_status=VALIDATION_STATUS,
    validation_error_model=ErrorBody,
    before=_reject_invalid,
)


def responses(ok: type[BaseModel], *errors: int, ok_statuses: tuple[int, ...] = (200,)) -> Response:
    """Describe a view's answers: its success model and the errors it may give."""
    codes: dict[str, Any] = {f"HTTP_{status}": ErrorBody for status in (401, 403, 429, *errors)}
    codes.update({f"HTTP_{status}": ok for status in ok_statuses})
    return Response(**codes)


# Models of the existing endpoints (push, live token, me).


class Me(BaseModel):
    email: str
    role: Literal["viewer", "analyst", "admin"]


class LiveToken(BaseModel):
    token: str
    url: str
    expires_in: int


class PushedEvents(RootModel[list[dict[str, Any]]]):
    """A JSON array of objects, one per event (or NDJSON: one object per line)."""

    root: list[dict[str, Any]] = Field(min_length=1, max_length=50_000)


class PushSummary(BaseModel):
    model_config = ConfigDict(extra="allow")

    dataset: str
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    rows_duplicate: int


# Models of the read endpoints.


class Column(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    type: Literal["integer", "float", "boolean", "timestamp", "text"]
    nullable: bool = True


class DatasetInfo(BaseModel):
    name: str
    label: str
    columns: list[Column]
    time_column: str | None
    key_columns: list[str]


class DatasetList(BaseModel):
    datasets: list[DatasetInfo]


FILTER_HELP = (
    "Repeatable `field:op:value`. Operators: numbers eq, ne, lt, lte, gt, gte, in, "
    "between (`low,high`, both included); "
    "text and timestamps eq, ne, contains (case-insensitive), in; booleans eq, ne. "
    "`in` takes comma-separated values. Field names come from the dataset's columns. "
    f"At most {MAX_FILTERS} filters."
)


class EventsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_: datetime | None = Field(None, alias="from", description="inclusive, ISO 8601")
    to: datetime | None = Field(None, description="exclusive, ISO 8601")
    limit: int = Field(100, ge=1, le=1000)
    cursor: str | None = Field(None, max_length=200, description="next_cursor of a page")
    filter: list[str] = Field(default_factory=list, max_length=MAX_FILTERS, description=FILTER_HELP)


class Event(BaseModel):
    id: int
    ts: datetime
    values: dict[str, Any]


class EventPage(BaseModel):
    events: list[Event]
    next_cursor: str | None = Field(description="null on the last page")


class SeriesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_: datetime | None = Field(None, alias="from", description="default: 24 h before `to`")
    to: datetime | None = Field(None, description="default: now")
    bucket: Literal["minute", "hour", "day"] = "hour"
    agg: Literal["count", "sum", "avg", "min", "max", "p50", "p95"] = "count"
    field: str | None = Field(None, description="a numeric column; needed unless agg=count")
    filter: list[str] = Field(default_factory=list, max_length=MAX_FILTERS, description=FILTER_HELP)
    group_by: str | None = Field(
        None,
        max_length=200,
        description="a column: one series per value for the `top` values with the most "
        "events in the range, and one `other` series for the rest",
    )
    top: int = Field(5, ge=1, le=20, description="how many groups get their own series")


class SeriesPoint(BaseModel):
    bucket: datetime
    value: float | None


class GroupSeries(BaseModel):
    group: str | None = Field(description="the group's value as text; null: no value")
    other: bool = Field(description="true for the series of every group beyond the top")
    points: list[SeriesPoint]


class Series(BaseModel):
    dataset: str
    bucket: str
    agg: str
    field: str | None
    from_: datetime = Field(alias="from")
    to: datetime
    points: list[SeriesPoint] = Field(description="the series; empty when grouped")
    groups: list[GroupSeries] | None = Field(None, description="with group_by: one per group")


# How one answer leads to the next request: OpenAPI links. Clients may follow them, and
# schemathesis does, to test sequences of calls (tests/test_api_contract.py).

DATASETS = "/api/v1/datasets"
DATASET = "/api/v1/datasets/{name}"
EVENTS = f"{DATASET}/events"
SERIES = f"{DATASET}/series"


@dataclass(frozen=True)
class OperationLink:
    """An OpenAPI link: values from one operation's answer fill a request to another."""

    source: tuple[str, str]  # method and path of the operation that answers
    statuses: tuple[int, ...]  # the answers that carry the link
    name: str
    target: tuple[str, str]  # method and path of the operation it leads to
    parameters: dict[str, str]  # "path.name", "query.cursor", ...: a runtime expression
    description: str


def _to_dataset(
    source: tuple[str, str], statuses: tuple[int, ...], name: str, which: str
) -> list[OperationLink]:
    """Link an answer that names a dataset to its description, its events and its series."""
    targets = {
        "describe": (DATASET, f"Describe {which}."),
        "events": (EVENTS, f"Page through the events of {which}."),
        "series": (SERIES, f"Aggregate {which} over time."),
    }
    return [
        OperationLink(source, statuses, link, ("get", path), {"path.name": name}, description)
        for link, (path, description) in targets.items()
    ]


OPERATION_LINKS: tuple[OperationLink, ...] = (
    *_to_dataset(
        ("get", DATASETS), (200,), "$response.body#/datasets/0/name", "the first dataset listed"
    ),
    *_to_dataset(("post", EVENTS), (200, 201), "$response.body#/dataset", "the dataset pushed to"),
    OperationLink(
        ("get", DATASET),
        (200,),
        "events",
        ("get", EVENTS),
        {"path.name": "$response.body#/name"},
        "Page through this dataset's events.",
    ),
    OperationLink(
        ("get", DATASET),
        (200,),
        "seriesByFirstColumn",
        ("get", SERIES),
        {"path.name": "$response.body#/name", "query.group_by": "$response.body#/columns/0/name"},
        "Aggregate this dataset over time, one series per value of its first column.",
    ),
    OperationLink(
        ("get", EVENTS),
        (200,),
        "nextPage",
        ("get", EVENTS),
        {
            "path.name": "$request.path.name",
            "query.cursor": "$response.body#/next_cursor",
            "query.limit": "$request.query.limit",
            "query.from": "$request.query.from",
            "query.to": "$request.query.to",
            "query.filter": "$request.query.filter",
        },
        "The next page of the same query; there is none when next_cursor is null.",
    ),
    OperationLink(
        ("get", SERIES),
        (200,),
        "eventsInRange",
        ("get", EVENTS),
        {
            "path.name": "$response.body#/dataset",
            "query.from": "$response.body#/from",
            "query.to": "$response.body#/to",
            "query.filter": "$request.query.filter",
        },
        "The events this series aggregates: the same dataset, time range and filters.",
    ),
)


def add_links(document: dict[str, Any], links: Iterable[OperationLink]) -> dict[str, Any]:
    """Put each link on its source's answers, naming its target by the target's operationId."""
    paths = document["paths"]
    for link in links:
        method, path = link.target
        definition = {
            "operationId": paths[path][method]["operationId"],
            "parameters": dict(link.parameters),
            "description": link.description,
        }
        method, path = link.source
        answers = paths[path][method]["responses"]
        for status in link.statuses:
            answers[str(status)].setdefault("links", {})[link.name] = definition
    return document
