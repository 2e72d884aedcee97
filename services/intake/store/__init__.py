"""Intake's store: the one place of the service that speaks SQL. ``tables`` is the
schema; ``referrals`` (with the patient's identity), ``history``, ``rejections`` and
``registry`` (the registered referrers and their quotas) each build their statements
once, at import."""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import Row

# A row of any shape: the callers read its columns by name.
AnyRow: TypeAlias = Row[*tuple[Any, ...]]
