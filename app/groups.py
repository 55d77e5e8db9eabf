"""Groups of users and grants on restricted datasets: every change audited in its transaction."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, delete, select

from app import audit
from app.extensions import db
from app.models import Dataset, DatasetGrant, Group, GroupMember, User

VISIBILITIES = ("all", "restricted")
VISIBILITY = "visibility "  # how a Change lists a new visibility: "visibility restricted"
MAX_GROUP_NAME = 100


class AccessError(ValueError):
    """A group or grant change was refused; the message says why."""


@dataclass(frozen=True)
class Access:
    """Who may see a dataset: everyone (``all``), or its owner, admins and the grantees."""

    visibility: str
    groups: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Change:
    added: list[str]
    removed: list[str]


def list_groups() -> list[Group]:
    return list(db.session.scalars(select(Group).order_by(Group.name)))


def members_of(group: Group) -> list[str]:
    """Return the emails of ``group``'s members, sorted."""
    query = (
        select(User.email)
        .join(GroupMember, GroupMember.user_id == User.id)
        .where(GroupMember.group_id == group.id)
        .order_by(User.email)
    )
    return list(db.session.scalars(query))


def get_group(name: str) -> Group:
    group: Group | None = db.session.scalar(select(Group).where(Group.name == name))
    if group is None:
        raise AccessError(f"no group called {name!r}")
    return group


def create_group(name: str, actor: User | None) -> Group:
    """Create an empty group; :raises AccessError: for a bad or taken name."""
    name = name.strip()
    if not name or len(name) > MAX_GROUP_NAME or not name.isprintable():
        raise AccessError(f"give the group a name of 1 to {MAX_GROUP_NAME} characters")
    if db.session.scalar(select(Group.id).where(Group.name == name)) is not None:
        raise AccessError(f"a group called {name!r} already exists")
    group = Group(name=name)
    db.session.add(group)
    audit.record("group.create", actor, name)
    db.session.commit()
    return group


def delete_group(name: str, actor: User | None) -> None:
    """Delete a group: its members lose the access it gave them."""
    group = get_group(name)
    audit.record("group.delete", actor, name, members=members_of(group))
    db.session.delete(group)
    db.session.commit()


def set_members(name: str, emails: list[str], actor: User | None, dry_run: bool = False) -> Change:
    """Make ``emails`` the members of group ``name``; return who was added and removed."""
    group = get_group(name)
    wanted = _users(emails)
    current = set(members_of(group))
    change = Change(sorted(set(wanted) - current), sorted(current - set(wanted)))
    if dry_run:
        return change
    for email in change.added:
        db.session.add(GroupMember(group_id=group.id, user_id=wanted[email].id))
        audit.record("group.add_member", actor, name, user=email)
    if change.removed:
        removed_ids = select(User.id).where(User.email.in_(change.removed))
        db.session.execute(
            delete(GroupMember).where(
                GroupMember.group_id == group.id, GroupMember.user_id.in_(removed_ids)
            )
        )
    for email in change.removed:
        audit.record("group.remove_member", actor, name, user=email)
    db.session.commit()
    return change


def list_datasets() -> list[Dataset]:
    return list(db.session.scalars(select(Dataset).order_by(Dataset.name)))


def dataset_access(dataset: Dataset) -> Access:
    grants = db.session.execute(
        select(Group.name, User.email)
        .select_from(DatasetGrant)
        .outerjoin(Group, Group.id == DatasetGrant.group_id)
        .outerjoin(User, User.id == DatasetGrant.user_id)
        .where(DatasetGrant.dataset_id == dataset.id)
    ).all()
    return Access(
        dataset.visibility,
        sorted(group for group, _ in grants if group),
        sorted(email for _, email in grants if email),
    )


def set_dataset_access(
    name: str, wanted: Access, actor: User | None, dry_run: bool = False
) -> Change:
    """Give dataset ``name`` the visibility and grants of ``wanted``; return what changed.

    ``removed`` lists what takes access away (revoked grants, becoming restricted).
    """
    dataset = db.session.scalar(select(Dataset).where(Dataset.name == name))
    if dataset is None:
        raise AccessError(f"no dataset called {name!r}")
    if wanted.visibility not in VISIBILITIES:
        raise AccessError("choose who may see the dataset: all or restricted")
    groups = {group.name: group for group in map(get_group, set(wanted.groups))}
    users = _users(wanted.users)
    now = dataset_access(dataset)
    added = [f"group {g}" for g in sorted(set(groups) - set(now.groups))]
    added += [f"user {u}" for u in sorted(set(users) - set(now.users))]
    removed = [f"group {g}" for g in sorted(set(now.groups) - set(groups))]
    removed += [f"user {u}" for u in sorted(set(now.users) - set(users))]
    if wanted.visibility != now.visibility:
        (removed if wanted.visibility == "restricted" else added).append(
            f"{VISIBILITY}{wanted.visibility}"
        )
    if dry_run:
        return Change(added, removed)
    if wanted.visibility != now.visibility:
        dataset.visibility = wanted.visibility
        audit.record(
            "dataset.set_visibility", actor, name, old=now.visibility, new=wanted.visibility
        )
    for group_name in sorted(set(groups) - set(now.groups)):
        db.session.add(DatasetGrant(dataset_id=dataset.id, group_id=groups[group_name].id))
        audit.record("dataset.grant", actor, name, group=group_name)
    for email in sorted(set(users) - set(now.users)):
        db.session.add(DatasetGrant(dataset_id=dataset.id, user_id=users[email].id))
        audit.record("dataset.grant", actor, name, user=email)
    for group_name in sorted(set(now.groups) - set(groups)):
        group_id = select(Group.id).where(Group.name == group_name).scalar_subquery()
        _revoke(dataset, DatasetGrant.group_id == group_id)
        audit.record("dataset.revoke", actor, name, group=group_name)
    for email in sorted(set(now.users) - set(users)):
        _revoke(
            dataset,
            DatasetGrant.user_id == select(User.id).where(User.email == email).scalar_subquery(),
        )
        audit.record("dataset.revoke", actor, name, user=email)
    db.session.commit()
    return Change(added, removed)


def _revoke(dataset: Dataset, grantee: ColumnElement[bool]) -> None:
    db.session.execute(delete(DatasetGrant).where(DatasetGrant.dataset_id == dataset.id, grantee))


def _users(emails: list[str]) -> dict[str, User]:
    """Return the users with these emails by email; :raises AccessError: for an unknown one."""
    wanted = {email.strip().lower() for email in emails}
    found = {
        user.email: user for user in db.session.scalars(select(User).where(User.email.in_(wanted)))
    }
    missing = sorted(wanted - set(found))
    if missing:
        raise AccessError(f"no user with email {missing[0]!r}")
    return found
