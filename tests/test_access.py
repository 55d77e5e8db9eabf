"""Dataset visibility: everyone signed in, or only the owner, admins and grantees."""

from __future__ import annotations

import pytest

from app.access import find_visible_dataset, visible_datasets
from app.extensions import db
from app.models import Dataset, DatasetGrant, Group, GroupMember
from app.users import create_user, get_user

COLUMNS = [{"name": "v", "label": "v", "type": "integer", "nullable": True}]


@pytest.fixture
def people(app):
    with app.app_context():
        for email, role in [
            ("owner@example.com", "analyst"),
            ("granted@example.com", "viewer"),
            ("member@example.com", "viewer"),
            ("stranger@example.com", "viewer"),
            ("boss@example.com", "admin"),
        ]:
            create_user(email, role, "long enough password")
        owner = get_user("owner@example.com")
        for name, visibility in [("public_data", "all"), ("secret_data", "restricted")]:
            db.session.add(
                Dataset(
                    name=name,
                    label=name,
                    columns=COLUMNS,
                    visibility=visibility,
                    owner_id=owner.id,
                    key_columns=[],
                    options={},
                )
            )
        db.session.flush()
        secret = db.session.query(Dataset).filter_by(name="secret_data").one()
        team = Group(name="team")
        db.session.add(team)
        db.session.flush()
        db.session.add(GroupMember(group_id=team.id, user_id=get_user("member@example.com").id))
        db.session.add(
            DatasetGrant(dataset_id=secret.id, user_id=get_user("granted@example.com").id)
        )
        db.session.add(DatasetGrant(dataset_id=secret.id, group_id=team.id))
        db.session.commit()
        yield
        db.session.remove()


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("owner@example.com", ["public_data", "secret_data"]),
        ("granted@example.com", ["public_data", "secret_data"]),
        ("member@example.com", ["public_data", "secret_data"]),
        ("stranger@example.com", ["public_data"]),
        ("boss@example.com", ["public_data", "secret_data"]),
    ],
)
def test_who_sees_which_dataset(app, people, email, expected):
    user = get_user(email)
    assert [dataset.name for dataset in visible_datasets(user)] == expected
    assert (find_visible_dataset(user, "secret_data") is not None) == ("secret_data" in expected)


def test_a_dataset_read_beside_the_orm_behaves_as_one_the_orm_loaded(app, people):
    # find_visible_dataset reads its row with psycopg, not through the ORM (for speed), and
    # hands back an instance the session treats as loaded: the same object for the same row,
    # a change saved by commit as an UPDATE, never a second INSERT.
    boss = get_user("boss@example.com")
    found = find_visible_dataset(boss, "public_data")
    assert found is find_visible_dataset(boss, "public_data")
    assert found is db.session.get(Dataset, found.id)  # no second copy in the session
    assert [dataset.name for dataset in visible_datasets(boss)][0] == "public_data"
    assert visible_datasets(boss)[0] is found
    found.label = "Public data, renamed"
    dataset_id = found.id
    db.session.commit()
    db.session.remove()
    assert db.session.get(Dataset, dataset_id).label == "Public data, renamed"
    assert db.session.query(Dataset).count() == 2


def test_a_read_beside_the_orm_sees_the_sessions_unsaved_changes(app, people):
    boss = get_user("boss@example.com")
    db.session.add(
        Dataset(name="draft", label="draft", columns=COLUMNS, key_columns=[], options={})
    )
    found = find_visible_dataset(boss, "draft")  # flushed first, as the ORM's autoflush does
    assert found is not None and found.label == "draft"
    db.session.rollback()
    assert find_visible_dataset(boss, "draft") is None
