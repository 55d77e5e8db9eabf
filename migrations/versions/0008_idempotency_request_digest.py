"""An idempotency key remembers the request it answered.

A key reused with a different batch was answered with the first batch's stored summary and
the new rows were dropped without a word. Each key now keeps the SHA-256 of the request body
it answered; a retry with the same body is replayed, another body gets a 422. Keys stored
before this revision have no digest and are replayed as before.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE idempotency_keys ADD COLUMN request_sha256 bytea")


def downgrade() -> None:
    op.execute("ALTER TABLE idempotency_keys DROP COLUMN request_sha256")
