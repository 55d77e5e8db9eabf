"""Typed read queries for pages; pages never hold SQL themselves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, func, or_, select, text

from app.event_queries import NUMERIC_TYPES
from app.extensions import db
from app.models import AuditEntry, Dataset
from etl.export import csv_lines

AUDIT_PAGE_SIZE = 100
AUDIT_EXPORT_MAX = 100_000
AUDIT_CSV_HEADER = ("at", "actor", "action", "target", "ip", "user_agent", "details")


class AuditFilterError(ValueError):
    """An audit filter could not be read; the message is for the user."""


@dataclass(frozen=True)
class AuditFilter:
    """Which audit entries to show: by actor email, by action and by time (UTC)."""

    actor: str | None = None
    action: str | None = None  # an action, or a family of them as 'job.*'
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def from_form(cls, actor: object, action: object, since: object, until: object) -> AuditFilter:
        """Read the filters as a browser sent them; empty means no filter.

        :raises AuditFilterError: a time is not a date and time, or the range ends before it starts.
        """
        found = cls(_text(actor), _text(action), _moment(since, "from"), _moment(until, "to"))
        if found.since is not None and found.until is not None and found.since > found.until:
            raise AuditFilterError("The time range must start before it ends.")
        return found

    def where(self, query: Select[Any]) -> Select[Any]:
        if self.actor is not None:
            query = query.where(AuditEntry.actor_email == self.actor)
        if self.action is not None and self.action.endswith(".*"):
            family = self.action[:-2]
            query = query.where(
                or_(AuditEntry.action == family, AuditEntry.action.startswith(f"{family}."))
            )
        elif self.action is not None:
            query = query.where(AuditEntry.action == self.action)
        if self.since is not None:
            query = query.where(AuditEntry.at >= self.since)
        if self.until is not None:
            query = query.where(AuditEntry.at <= self.until)
        return query


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _moment(value: object, what: str) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(str(value).strip().replace(" ", "T", 1))
    except ValueError:
        raise AuditFilterError(f"The {what} time {value!r} is not a date and time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _audit_row(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": entry.at.astimezone(UTC).isoformat(timespec="seconds"),
        "actor": entry.actor_email,
        "action": entry.action,
        "target": entry.target,
        "ip": entry.ip,
        "user_agent": entry.user_agent,
        "details": json.dumps(entry.details, sort_keys=True, default=str),
    }


def audit_rows(
    found: AuditFilter = AuditFilter(), page: int = 1, size: int = AUDIT_PAGE_SIZE
) -> list[dict[str, Any]]:
    """Return one page (from 1) of the matching audit entries, newest first, as table rows."""
    query = found.where(select(AuditEntry)).order_by(AuditEntry.id.desc())
    entries = db.session.scalars(query.limit(size).offset((max(page, 1) - 1) * size))
    return [_audit_row(entry) for entry in entries]


def audit_count(found: AuditFilter = AuditFilter()) -> int:
    """Return how many audit entries match."""
    query = found.where(select(func.count()).select_from(AuditEntry))
    return int(db.session.scalar(query) or 0)


def audit_csv(found: AuditFilter, limit: int = AUDIT_EXPORT_MAX) -> str:
    """Return the newest ``limit`` matching audit entries as formula-safe CSV text."""
    query = found.where(select(AuditEntry)).order_by(AuditEntry.id.desc()).limit(limit)
    rows = (_audit_row(entry) for entry in db.session.scalars(query))
    return "".join(
        csv_lines(AUDIT_CSV_HEADER, ([row[k] for k in AUDIT_CSV_HEADER] for row in rows))
    )


def audit_choices() -> tuple[list[str], list[str]]:
    """Return the actors and the actions (with their families, as 'job.*') seen in the log."""
    actors = db.session.scalars(
        select(AuditEntry.actor_email).where(AuditEntry.actor_email.is_not(None)).distinct()
    )
    actions = set(db.session.scalars(select(AuditEntry.action).distinct()))
    families = {f"{action.split('.')[0]}.*" for action in actions if "." in action}
    return sorted(str(actor) for actor in actors), sorted(actions | families)


def numeric_fields(dataset: Dataset) -> list[str]:
    """Return the dataset's columns that can be plotted as numbers, in schema order."""
    return [column["name"] for column in dataset.columns if column["type"] in NUMERIC_TYPES]


def recent_points(dataset: Dataset, fields: list[str], limit: int) -> dict[str, Any]:
    """Return the newest ``limit`` events of ``dataset`` (by id) in time order, column-wise.

    The shape is that of the hub's ``points`` message (``ids``, ``ts``, ``values``), so the
    live page draws its first window and its pushed points the same way.
    """
    rows = db.session.execute(
        text(
            "SELECT id, ts, payload FROM ("
            " SELECT id, ts, payload FROM events WHERE dataset_id = :dataset"
            " ORDER BY id DESC LIMIT :limit) AS newest ORDER BY ts, id"
        ),
        {"dataset": dataset.id, "limit": limit},
    ).all()
    return {
        "ids": [row.id for row in rows],
        "ts": [row.ts.astimezone(UTC).isoformat(timespec="milliseconds") for row in rows],
        "values": {field: [row.payload.get(field) for row in rows] for field in fields},
        "last_id": max(row.id for row in rows) if rows else _last_id(dataset),
    }


def _last_id(dataset: Dataset) -> int:
    found = db.session.execute(
        text("SELECT coalesce(max(id), 0) FROM events WHERE dataset_id = :dataset"),
        {"dataset": dataset.id},
    ).scalar()
    return int(found or 0)


# Events a dataset holds, from its hourly rollups of the event count (the retention purge
# takes them by whole hours, so the hour holding its cut may count a few events more), the
# time of its last event, from the end of its time index, and its owner's email.
_DATASET_FIGURES = text(
    "SELECT d.id, (SELECT u.email FROM users u WHERE u.id = d.owner_id) AS owner,"
    " (SELECT sum(r.n) FROM rollups r"
    "  WHERE r.dataset_id = d.id AND r.grain = 'hour' AND r.field = '') AS events,"
    " (SELECT max(e.ts) FROM events e WHERE e.dataset_id = d.id) AS last_event"
    " FROM datasets d WHERE d.id = ANY(:ids)"
)


@dataclass(frozen=True)
class DatasetOverview:
    """What the datasets list shows of one dataset."""

    dataset: Dataset
    owner: str | None
    events: int
    last_event: datetime | None


def dataset_overview(datasets: list[Dataset]) -> list[DatasetOverview]:
    """Give each of ``datasets`` (already filtered by who may see them) its owner's email,
    event count and last event's time, in one query."""
    if not datasets:
        return []
    figures = {
        row.id: row
        for row in db.session.execute(_DATASET_FIGURES, {"ids": [d.id for d in datasets]})
    }
    return [
        DatasetOverview(
            dataset=dataset,
            owner=figures[dataset.id].owner,
            events=int(figures[dataset.id].events or 0),
            last_event=figures[dataset.id].last_event,
        )
        for dataset in datasets
    ]
