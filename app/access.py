"""Who may see which dataset: everyone signed in, or only its owner, admins and grantees."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, exists, or_, select

from app.extensions import db
from app.models import Dataset, DatasetGrant, GroupMember, Role, User


def visible_datasets_query(user: User) -> Select[Any]:
    """Select the datasets ``user`` may see."""
    query = select(Dataset).order_by(Dataset.name)
    if Role(user.role) == Role.ADMIN:
        return query
    granted = exists().where(
        DatasetGrant.dataset_id == Dataset.id,
        or_(
            DatasetGrant.user_id == user.id,
            DatasetGrant.group_id.in_(
                select(GroupMember.group_id).where(GroupMember.user_id == user.id)
            ),
        ),
    )
    return query.where(or_(Dataset.visibility == "all", Dataset.owner_id == user.id, granted))


def visible_datasets(user: User) -> list[Dataset]:
    return list(db.session.scalars(visible_datasets_query(user)))


def find_visible_dataset(user: User, name: str) -> Dataset | None:
    """Return the dataset called ``name`` if ``user`` may see it (else None, as if absent)."""
    found: Dataset | None = db.session.scalars(
        visible_datasets_query(user).where(Dataset.name == name)
    ).first()
    return found


def dataset_exists(name: str) -> bool:
    return db.session.scalar(select(exists().where(Dataset.name == name))) or False
