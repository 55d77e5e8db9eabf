"""Changing a dataset from the app: its retention, or deleting it; its owner or an admin only.

The command line does the same as an operator (``insightwave datasets``); here every change is
checked against the signed-in user and audited with their name.
"""

from __future__ import annotations

from app import audit
from app.access import find_visible_dataset
from app.components.messages import counted
from app.database import connect
from app.extensions import db
from app.models import Dataset, Role, User
from etl.datasets import delete_dataset
from etl.retention import set_retention

MAX_RETENTION_DAYS = 36_500  # a hundred years; more is "forever", which 0 says


class DatasetChangeError(ValueError):
    """A change to a dataset was refused; the message is for the user."""


def may_manage(user: User, dataset: Dataset) -> bool:
    """Say whether ``user`` may change or delete ``dataset``: its owner, or an admin."""
    return Role(user.role) == Role.ADMIN or dataset.owner_id == user.id


def change_retention(user: User, name: object, days: object) -> str:
    """Keep ``name``'s events ``days`` days (0: forever); say what was done."""
    if isinstance(days, bool) or not isinstance(days, int | float) or days != int(days):
        raise DatasetChangeError("Give the days to keep events as a whole number (0: forever).")
    if not 0 <= days <= MAX_RETENTION_DAYS:
        raise DatasetChangeError(f"Keep events 0 (forever) to {MAX_RETENTION_DAYS:,} days.")
    managed = _managed(user, name)
    kept = int(days) or None
    with connect() as conn, conn.transaction():
        set_retention(conn, managed, kept)
        audit.record_on(conn, "dataset.retention", user, managed, days=kept)
    return f"{managed}: events kept {'forever' if kept is None else f'for {kept} days'}."


def delete_managed_dataset(user: User, name: object) -> str:
    """Delete ``name`` with all it holds; say what was deleted."""
    managed = _managed(user, name)
    with connect() as conn, conn.transaction():
        held = delete_dataset(conn, managed)
        if held is None:
            raise DatasetChangeError(f"There is no dataset called {managed!r} any more.")
        audit.record_on(conn, "dataset.delete", user, managed, events=held)
    return f"Dataset {managed} is deleted, with its {counted(held, 'event')}."


def deletion_question(user: User, name: object) -> str:
    """Ask before deleting ``name``; refuse at once what would be refused then."""
    managed = _managed(user, name)
    return f"Delete dataset {managed}? Its events, rollups, grants, jobs and runs go with it."


def _managed(user: User, name: object) -> str:
    """The name of a dataset ``user`` may change; refused with the reason otherwise."""
    if not isinstance(name, str) or not name:
        raise DatasetChangeError("Select a dataset first.")
    dataset = find_visible_dataset(user, name)
    if dataset is None:  # unknown, or not this user's to see: the same words
        raise DatasetChangeError(f"There is no dataset called {name!r} that you may see.")
    if not may_manage(user, dataset):
        raise DatasetChangeError(f"Only the owner of {name} or an admin may change it.")
    db.session.rollback()  # no open transaction of ours stands in the way of the change's locks
    return name
