"""Security-center and admin-panel additions to the schema (migration 0005_admin). No new tables: one preference
column on ``users``, declared on the model in ``authsvc.models`` and added here so the change stays in one place."""

from __future__ import annotations

from sqlalchemy import Boolean, true
from sqlalchemy.orm import Mapped, mapped_column

from authsvc.models import User

# "E-mail me when my account is signed in to from a new place" (security center → Notifications).
User.notify_new_sign_in: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true(), nullable=False)
