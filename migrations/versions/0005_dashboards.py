"""Saved dashboards: a name, an owner and a JSON spec (range, refresh, charts in order).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE dashboards (
            id bigint GENERATED ALWAYS AS IDENTITY,
            name varchar(100) NOT NULL,
            owner_id bigint,
            spec jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT pk_dashboards PRIMARY KEY (id),
            CONSTRAINT uq_dashboards_name UNIQUE (name),
            CONSTRAINT fk_dashboards_owner_id_users FOREIGN KEY (owner_id)
                REFERENCES users (id) ON DELETE SET NULL
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE dashboards")
