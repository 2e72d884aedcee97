"""The notifier's state, and the only place of the notifier that speaks SQL: the
centres and their appointments (``centres``), the patients' contacts (``contacts``),
who referred each patient and the outcomes kept until that referrer is known
(``referrers``), the cancellations told (``cancellations``), every notification
(``notifications``), the dispatcher's claim, record and quota (``dispatch``), and what
the ARS's on-call was told of each département's alerts (``oncall``). The
schema is ``tables``.

Each statement is built once, at import, with its parameters bound per call
(``bindparam``): a message costs the execution, not the construction, and SQLAlchemy's
compiled cache keys on the one statement object. The same statements run on SQLite and
PostgreSQL.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy import Row

# A row of any shape: the callers read its columns by name.
AnyRow: TypeAlias = Row[*tuple[Any, ...]]
