"""Every service reads the same way: its ``store/`` package is the one place of it that
speaks SQL, with its statements built once at import; handlers and routers orchestrate.

Read from the source (no import of the modules checked, no server): a statement
constructor imported, or reached through ``import sqlalchemy``, anywhere in
``services/<name>/`` but ``store/`` (with ``store/tables.py``, the schema) and
``migrations/`` fails the test, naming the module and the line.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from sqlalchemy import Delete, Insert, Select, Update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter

SERVICES = Path(__file__).resolve().parents[2] / "services"
NAMES = ("intake", "regulation", "scheduler", "notifier")

# What builds a statement, or SQL text: the handlers' business is none of them.
CONSTRUCTORS = frozenset(
    {
        "select",
        "insert",
        "update",
        "delete",
        "text",
        "union",
        "union_all",
        "exists",
        "literal_column",
        "table",
        "column",
    }
)


def _exempt(path: Path) -> bool:
    relative = path.relative_to(SERVICES)
    return "store" in relative.parts or "migrations" in relative.parts


def _modules() -> list[Path]:
    return sorted(
        p
        for name in NAMES
        for p in (SERVICES / name).rglob("*.py")
        if "__pycache__" not in p.parts and not _exempt(p)
    )


def sql_uses(source: str) -> list[str]:
    """Where the source builds SQL: ``line: what``, empty when it does not."""
    tree = ast.parse(source)
    found: list[str] = []
    aliases: set[str] = set()  # names bound to the sqlalchemy package or a submodule
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.split(".")[0]
            if top != "sqlalchemy":
                continue
            for alias in node.names:
                # From sqlalchemy itself, sqlalchemy.sql or a dialect (its insert): a
                # constructor; exc, types and ext.asyncio (AsyncSession) are not.
                if alias.name in CONSTRUCTORS:
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                elif node.module.startswith("sqlalchemy.dialects") or alias.name == "dialects":
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                    aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sqlalchemy":
                    aliases.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        # sa.select(...), sqlalchemy.insert(...), postgresql.insert(...)
        if isinstance(node, ast.Attribute) and node.attr in CONSTRUCTORS:
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_check_sees_sql_where_there_is_some() -> None:
    """The detector is not blind: each way of building SQL is caught, and a store is."""
    for source in (
        "from sqlalchemy import select\n",
        "from sqlalchemy import insert as ins\n",
        "from sqlalchemy.sql import update\n",
        "import sqlalchemy as sa\nq = sa.delete(t)\n",
        "import sqlalchemy\nq = sqlalchemy.text('x')\n",
        "from sqlalchemy.dialects import postgresql\nq = postgresql.insert(t)\n",
    ):
        assert sql_uses(source), source
    for source in (
        "from sqlalchemy.ext.asyncio import AsyncSession\n",
        "from sqlalchemy.exc import IntegrityError\n",
        "from services.notifier import store\nstore.select_none()\n",
    ):
        assert not sql_uses(source), source
    for name in NAMES:
        assert any(sql_uses(p.read_text()) for p in (SERVICES / name / "store").glob("*.py")), name


def test_only_the_stores_speak_sql() -> None:
    modules = _modules()
    checked = {p.relative_to(SERVICES).as_posix() for p in modules}
    # Not trivially passing: the modules that used to hold the statements are read.
    for name in NAMES:
        assert any(c.startswith(f"{name}/handlers/") for c in checked), name
        assert any(c.startswith(f"{name}/http/") for c in checked), name
    offending = {
        p.relative_to(SERVICES).as_posix(): uses
        for p in modules
        if (uses := sql_uses(p.read_text()))
    }
    assert not offending, (
        f"SQL outside the services' stores (move it into services/<name>/store/): {offending}"
    )


# -- the stores' statements, built once -------------------------------------------------


def _store(name: str) -> list[ModuleType]:
    """The modules of a service's ``store/`` package."""
    package = importlib.import_module(f"services.{name}.store")
    return [package] + [
        importlib.import_module(f"{package.__name__}.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
    ]


def _statements(modules: list[ModuleType]) -> dict[str, Any]:
    return {
        f"{module.__name__.rsplit('.', 1)[-1]}.{k}": v
        for module in modules
        for k, v in vars(module).items()
        if isinstance(v, Select | Insert | Update | Delete)
    }


@pytest.mark.parametrize("name", NAMES)
def test_each_store_builds_its_statements_at_import(name: str) -> None:
    """Module-level statements, compiling on both databases the services run on."""
    statements = _statements(_store(name))
    assert len(statements) >= 5, f"{name}'s store builds its statements per call"
    for label, statement in statements.items():
        for dialect in (sqlite.dialect(), postgresql.dialect()):
            statement.compile(dialect=dialect)  # raises on what a dialect cannot say
        if isinstance(statement, Insert | Update):
            # A bound name equal to a column's is taken by SQLAlchemy as that column's
            # new value (or refused): an UPDATE of the key itself, by surprise.
            columns = set(statement.table.c.keys())
            bound = {
                element.key
                for element in visitors.iterate(statement)
                if isinstance(element, BindParameter) and not element.key.startswith("%(")
            }
            assert not bound & columns, f"{name}.store.{label} binds {bound & columns}"
