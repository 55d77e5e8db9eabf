"""Saved dashboards: charts from the explore page, kept in order under a name with an owner.

Anyone signed in may open a dashboard (each chart still shows only datasets they may see);
analysts create them, and their owner or an admin changes, duplicates or deletes them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app import audit
from app.extensions import db
from app.models import Dashboard, Role, User

CHART_KEYS = ("dataset", "agg", "field", "bucket", "view")
RANGES = ("15m", "1h", "24h", "7d", "30d")
REFRESH_SECONDS = (0, 10, 30, 60, 300)
MAX_CHARTS = 24
MAX_NAME = 100


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
    charts.append({key: chart.get(key) for key in CHART_KEYS})
    dashboard.spec = {**dashboard.spec, "charts": charts}
    db.session.commit()
    return dashboard


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
