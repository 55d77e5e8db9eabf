"""Saved dashboards: charts from the explore page, kept in order under a name with an owner.

Anyone signed in may open a dashboard (each chart still shows only datasets they may see);
analysts create them, and their owner or an admin changes, duplicates or deletes them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app import audit
from app.charts import PRESETS, Chart
from app.extensions import db
from app.models import Dashboard, Role, User

SAVED = "saved"  # each chart over the range it was saved with (a custom one included)
RANGES = (*PRESETS, SAVED)
REFRESH_SECONDS = (0, 10, 30, 60, 300)
MAX_CHARTS = 24
MAX_NAME = 100
LIVE_WINDOWS = (200, 500, 1000, 5000)
MAX_LIVE_FIELDS = 4
WIDTHS = (6, 12)  # of the dashboard grid's 12 columns: half or full


class DashboardError(ValueError):
    """A dashboard change that is not allowed or not well formed; the message says why."""


def list_dashboards() -> list[Dashboard]:
    return list(db.session.scalars(select(Dashboard).order_by(Dashboard.name)))


def get_dashboard(dashboard_id: object) -> Dashboard | None:
    if not isinstance(dashboard_id, int | str) or not str(dashboard_id).isdigit():
        return None
    if len(str(dashboard_id)) > 18:
        return None
    found: Dashboard | None = db.session.get(Dashboard, int(dashboard_id))
    return found


def may_change(user: User, dashboard: Dashboard) -> bool:
    role = Role(user.role)
    return role == Role.ADMIN or (role.includes(Role.ANALYST) and dashboard.owner_id == user.id)


def add_chart(user: User, name: object, chart: dict[str, Any]) -> Dashboard:
    """Append ``chart`` to the dashboard called ``name``, creating it (owned by ``user``)."""
    if not Role(user.role).includes(Role.ANALYST):
        raise DashboardError("only analysts and admins save dashboards")
    title = _name(name)
    dashboard = db.session.scalars(select(Dashboard).where(Dashboard.name == title)).first()
    if dashboard is None:
        dashboard = Dashboard(name=title, owner_id=user.id, spec=default_spec())
        db.session.add(dashboard)
        audit.record("dashboard.create", user, title)
    elif not may_change(user, dashboard):
        raise DashboardError(f"dashboard {title!r} belongs to someone else")
    charts = list(dashboard.spec.get("charts", []))
    if len(charts) >= MAX_CHARTS:
        raise DashboardError(f"a dashboard holds at most {MAX_CHARTS} charts")
    charts.append(chart_spec(chart))
    dashboard.spec = {**dashboard.spec, "charts": charts}
    db.session.commit()
    return dashboard


def chart_spec(raw: dict[str, Any]) -> dict[str, Any]:
    """What a dashboard keeps of a chart: a historical chart (drawn over the dashboard's
    range, or over its own saved one when the dashboard asks for SAVED) or a live one (a
    dataset's newest points, pushed by the hub)."""
    width = raw.get("width") if raw.get("width") in WIDTHS else 6
    if raw.get("kind") == "live":
        fields = raw.get("fields")
        window = raw.get("window")
        if not isinstance(raw.get("dataset"), str) or not isinstance(fields, list):
            raise DashboardError("a live chart needs a dataset and its fields")
        if (
            not fields
            or len(fields) > MAX_LIVE_FIELDS
            or not all(isinstance(name, str) and name for name in fields)
        ):
            raise DashboardError(f"a live chart shows 1 to {MAX_LIVE_FIELDS} fields")
        if window not in LIVE_WINDOWS:
            raise DashboardError(f"a live chart keeps {', '.join(map(str, LIVE_WINDOWS))} points")
        return {
            "kind": "live",
            "dataset": raw["dataset"],
            "fields": fields,
            "window": window,
            "width": width,
        }
    return {"kind": "historical", **Chart.from_mapping(raw).as_dict(), "width": width}


def historical_chart(spec: dict[str, Any], span: str) -> Chart:
    """A saved historical chart over the dashboard's range, or its own when that is SAVED."""
    chart = Chart.from_mapping(spec)
    return chart if span == SAVED else chart.over(span if span in PRESETS else "24h")


def arrange(user: User, dashboard: Dashboard, index: object, action: object) -> None:
    """Move a chart earlier or later, make it wide or narrow, or remove it."""
    if not may_change(user, dashboard):
        raise DashboardError("only its owner or an admin arranges a dashboard")
    charts = list(dashboard.spec.get("charts", []))
    if not isinstance(index, int) or not 0 <= index < len(charts):
        raise DashboardError("that chart is not on the dashboard")
    if action == "earlier" and index > 0:
        charts[index - 1], charts[index] = charts[index], charts[index - 1]
    elif action == "later" and index < len(charts) - 1:
        charts[index + 1], charts[index] = charts[index], charts[index + 1]
    elif action == "resize":
        charts[index] = {**charts[index], "width": 6 if charts[index].get("width") == 12 else 12}
    elif action == "remove":
        charts.pop(index)
    elif action not in ("earlier", "later"):
        raise DashboardError(f"no such change: {action!r}")
    dashboard.spec = {**dashboard.spec, "charts": charts}
    audit.record("dashboard.arrange", user, dashboard.name, change=str(action), chart=index)
    db.session.commit()


def duplicate(user: User, dashboard: Dashboard) -> Dashboard:
    if not Role(user.role).includes(Role.ANALYST):
        raise DashboardError("only analysts and admins save dashboards")
    taken = {found.name for found in list_dashboards()}
    copy_name = next(
        candidate
        for number in range(1, 1000)
        if (candidate := f"{dashboard.name} (copy{'' if number == 1 else f' {number}'})"[:MAX_NAME])
        not in taken
    )
    copy = Dashboard(name=copy_name, owner_id=user.id, spec=dict(dashboard.spec))
    db.session.add(copy)
    audit.record("dashboard.duplicate", user, copy_name, source=dashboard.name)
    db.session.commit()
    return copy


def delete(user: User, dashboard: Dashboard) -> None:
    if not may_change(user, dashboard):
        raise DashboardError("only its owner or an admin deletes a dashboard")
    audit.record("dashboard.delete", user, dashboard.name)
    db.session.delete(dashboard)
    db.session.commit()


def default_spec() -> dict[str, Any]:
    return {"range": "24h", "refresh": 0, "charts": []}


def _name(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip() or len(raw.strip()) > MAX_NAME:
        raise DashboardError(f"give the dashboard a name of 1 to {MAX_NAME} characters")
    if not raw.strip().isprintable():
        raise DashboardError("the dashboard name must be printable text")
    return raw.strip()
