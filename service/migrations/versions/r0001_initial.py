"""r0001: the service's database as it was when migrations began (autosave, clones, share links,
usage). Idempotent over a database made before migrations (``create_all`` of that time, with
``strip_outputs`` added by hand): missing tables are created, a missing ``strip_outputs`` column is
added, and the database is stamped r0001.

Revision ID: r0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "autosave_users" not in existing:
        op.create_table("autosave_users",
            sa.Column("name", sa.String(length=255), nullable=False),
            sa.Column("enabled", sa.Boolean(), nullable=False),
            sa.Column("interval", sa.Integer(), nullable=False),
            sa.Column("strip_outputs", sa.Boolean(), server_default=sa.false(), nullable=False),
            sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("name")
        )
    elif "strip_outputs" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("autosave_users")}:
        # a database from before output stripping: the column the service then added by hand
        op.add_column("autosave_users", sa.Column("strip_outputs", sa.Boolean(), server_default=sa.false(),
                                                  nullable=False))
    if "clone_repos" not in existing:
        op.create_table("clone_repos",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("user_name", sa.String(length=255), nullable=False),
            sa.Column("url", sa.String(length=2048), nullable=False),
            sa.Column("path", sa.String(length=1024), nullable=False),
            sa.Column("source", sa.String(length=255), nullable=False),
            sa.Column("state", sa.String(length=32), nullable=False),
            sa.Column("message", sa.Text(), nullable=False),
            sa.Column("last_attempt", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("user_name", "path")
        )
        op.create_index(op.f("ix_clone_repos_user_name"), "clone_repos", ["user_name"], unique=False)
    if "share_links" not in existing:
        op.create_table("share_links",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("owner", sa.String(length=255), nullable=False),
            sa.Column("kind", sa.String(length=16), nullable=False),
            sa.Column("title", sa.String(length=255), nullable=False),
            sa.Column("path", sa.String(length=1024), nullable=False),
            sa.Column("hide_code", sa.Boolean(), nullable=False),
            sa.Column("app", sa.String(length=16), nullable=False),
            sa.Column("profile", sa.String(length=255), nullable=False),
            sa.Column("image", sa.String(length=255), nullable=False),
            sa.Column("server", sa.String(length=255), nullable=False),
            sa.Column("mode", sa.String(length=16), nullable=False),
            sa.Column("users", sa.JSON(), nullable=False),
            sa.Column("groups", sa.JSON(), nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
            sa.Column("views", sa.Integer(), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id")
        )
        op.create_index(op.f("ix_share_links_owner"), "share_links", ["owner"], unique=False)
    if "usage_dask_containers" not in existing:
        op.create_table("usage_dask_containers",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("container_id", sa.String(length=128), nullable=False),
            sa.Column("user_name", sa.String(length=255), nullable=False),
            sa.Column("cluster", sa.String(length=255), nullable=False),
            sa.Column("role", sa.String(length=32), nullable=False),
            sa.Column("server_name", sa.String(length=255), nullable=False),
            sa.Column("cores", sa.Float(), nullable=False),
            sa.Column("memory", sa.BigInteger(), nullable=False),
            sa.Column("started", sa.DateTime(), nullable=False),
            sa.Column("last_seen", sa.DateTime(), nullable=False),
            sa.Column("stopped", sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("container_id")
        )
        op.create_index(op.f("ix_usage_dask_containers_started"), "usage_dask_containers", ["started"], unique=False)
        op.create_index(op.f("ix_usage_dask_containers_stopped"), "usage_dask_containers", ["stopped"], unique=False)
        op.create_index(op.f("ix_usage_dask_containers_user_name"), "usage_dask_containers", ["user_name"],
                        unique=False)
    if "usage_server_sessions" not in existing:
        op.create_table("usage_server_sessions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("user_name", sa.String(length=255), nullable=False),
            sa.Column("server_name", sa.String(length=255), nullable=False),
            sa.Column("profile", sa.String(length=64), nullable=False),
            sa.Column("started", sa.DateTime(), nullable=False),
            sa.Column("last_seen", sa.DateTime(), nullable=False),
            sa.Column("stopped", sa.DateTime(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("user_name", "server_name", "started")
        )
        op.create_index(op.f("ix_usage_server_sessions_started"), "usage_server_sessions", ["started"], unique=False)
        op.create_index(op.f("ix_usage_server_sessions_stopped"), "usage_server_sessions", ["stopped"], unique=False)
        op.create_index(op.f("ix_usage_server_sessions_user_name"), "usage_server_sessions", ["user_name"],
                        unique=False)
    if "autosave_repos" not in existing:
        op.create_table("autosave_repos",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("user_name", sa.String(length=255), nullable=False),
            sa.Column("path", sa.String(length=1024), nullable=False),
            sa.Column("remote", sa.String(length=255), nullable=False),
            sa.Column("state", sa.String(length=32), nullable=False),
            sa.Column("message", sa.Text(), nullable=False),
            sa.Column("branch", sa.String(length=255), nullable=True),
            sa.Column("push_branch", sa.String(length=255), nullable=True),
            sa.Column("last_pass", sa.DateTime(timezone=True), nullable=True),
            sa.Column("last_snapshot", sa.DateTime(timezone=True), nullable=True),
            sa.Column("last_commit", sa.String(length=64), nullable=True),
            sa.Column("last_push", sa.DateTime(timezone=True), nullable=True),
            sa.Column("last_pushed_commit", sa.String(length=64), nullable=True),
            sa.Column("last_pushed_branch", sa.String(length=255), nullable=True),
            sa.Column("left_out", sa.JSON(), nullable=False),
            sa.Column("error", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(["user_name"], ["autosave_users.name"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("user_name", "path")
        )
    if "report_versions" not in existing:
        op.create_table("report_versions",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("link_id", sa.String(length=64), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.Column("size", sa.Integer(), nullable=False),
            sa.Column("render_seconds", sa.Double(), nullable=False),
            sa.Column("sha256", sa.String(length=64), nullable=False),
            sa.Column("note", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(["link_id"], ["share_links.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id")
        )
        op.create_index(op.f("ix_report_versions_link_id"), "report_versions", ["link_id"], unique=False)


def downgrade() -> None:
    for table in ("report_versions", "autosave_repos", "usage_server_sessions", "usage_dask_containers",
                  "share_links", "clone_repos", "autosave_users"):
        op.drop_table(table)
