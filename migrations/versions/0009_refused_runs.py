"""A run whose input was refused is 'refused', not 'dead'.

A broken header or a file that does not fit its dataset was marked dead, the word for a run
that failed every retry, so an admin could not tell bad input from a broken source. From
this revision such runs are 'refused' (earlier ones stay as they were recorded). They are not
retried on their own: the same input would be refused again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

KNOWN = "status IN ('queued', 'running', 'succeeded', 'failed', 'dead'{})"


def _check(known: str) -> None:
    op.execute("ALTER TABLE ingest_runs DROP CONSTRAINT ck_ingest_runs_status_known")
    op.execute(
        f"ALTER TABLE ingest_runs ADD CONSTRAINT ck_ingest_runs_status_known CHECK ({known})"
    )


def upgrade() -> None:
    _check(KNOWN.format(", 'refused'"))


def downgrade() -> None:
    op.execute("UPDATE ingest_runs SET status = 'dead' WHERE status = 'refused'")
    _check(KNOWN.format(""))
