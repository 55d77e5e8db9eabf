"""An idempotency key is its user's own, within a dataset.

Keys were unique per dataset, so another user who sent the same key got the first user's
stored answer replayed (or a 422 for another body). From this revision the key of a push is
(dataset, user, key). Every push stored its user; a key without one is given the user of the
run it answered (its response names the run) and is dropped only if that cannot be told, as
no request could be matched to it any more. Downgrading keeps, of keys that now differ only
by user, the one used first.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE idempotency_keys k SET user_id = r.created_by FROM ingest_runs r "
        "WHERE k.user_id IS NULL AND r.id::text = k.response ->> 'run_id'"
    )
    op.execute("DELETE FROM idempotency_keys WHERE user_id IS NULL")
    op.execute("ALTER TABLE idempotency_keys DROP CONSTRAINT pk_idempotency_keys")
    op.execute(
        "ALTER TABLE idempotency_keys "
        "ADD CONSTRAINT pk_idempotency_keys PRIMARY KEY (dataset_id, user_id, key)"
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM idempotency_keys k USING idempotency_keys first "
        "WHERE first.dataset_id = k.dataset_id AND first.key = k.key "
        "AND (first.created_at, first.user_id) < (k.created_at, k.user_id)"
    )
    op.execute("ALTER TABLE idempotency_keys DROP CONSTRAINT pk_idempotency_keys")
    op.execute("ALTER TABLE idempotency_keys ALTER COLUMN user_id DROP NOT NULL")
    op.execute(
        "ALTER TABLE idempotency_keys "
        "ADD CONSTRAINT pk_idempotency_keys PRIMARY KEY (dataset_id, key)"
    )
