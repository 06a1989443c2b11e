"""The images table of format-1 indexes: one row per indexed image, id = FAISS id.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("source_key", sa.Text, nullable=False, unique=True),
        sa.Column("case_id", sa.Text, nullable=False),
        sa.Column("patient_id", sa.Text, nullable=False),
        sa.Column("laterality", sa.Text),
        sa.Column("view", sa.Text),
        sa.Column("label", sa.Text),
        sa.Column("image_path", sa.Text, nullable=False),
        sa.Column("thumbnail", sa.Text, nullable=False),
        sa.Column("report_text", sa.Text),
        sa.Column("report_json", sa.Text),
        sa.Column("has_text_vector", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("images_case", "images", ["case_id"])
    op.create_index("images_patient", "images", ["patient_id"])


def downgrade() -> None:
    op.drop_table("images")
