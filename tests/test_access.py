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
