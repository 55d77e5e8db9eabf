"""The groups page: groups of users, their members, and who may see a restricted dataset."""

from __future__ import annotations

from app.extensions import db
from app.models import Dataset

COLUMNS = [{"name": "v", "label": "v", "type": "integer", "nullable": True}]


def add_dataset(app, name: str, visibility: str) -> None:
    with app.app_context():
        db.session.add(
            Dataset(
                name=name,
                label=name,
                columns=COLUMNS,
                visibility=visibility,
                key_columns=[],
                options={},
            )
        )
        db.session.commit()
        db.session.remove()
