"""Generations: the generation that added and that removed each row (shared stores).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("added_gen", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("removed_gen", sa.BigInteger))
    op.create_index("images_added_gen", "images", ["added_gen"])


def downgrade() -> None:
    op.drop_index("images_added_gen", "images")
    with op.batch_alter_table("images") as batch:
        batch.drop_column("removed_gen")
        batch.drop_column("added_gen")
