"""The arrows only go down (issue 29's floor plan): ``bench/`` → ``aiguillage/`` →
``services/`` → ``shared/``. No service imports another; ``shared/`` imports no service;
the ``aiguillage`` command reaches a service only through its package (its public
functions) or its ``app``; a service's ``domain/`` does no I/O (no database, broker or
HTTP library). Read from the source: every import, at any depth of a module.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "regulation", "scheduler", "notifier")
# What a pure rule never needs: a database, a broker, a network client or server.
IO = ("sqlalchemy", "aio_pika", "aiormq", "faststream", "httpx", "fastapi", "asyncpg", "aiosmtpd")


def imports(source: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _modules(folder: str) -> Iterator[tuple[str, list[str]]]:
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield str(path.relative_to(ROOT)), list(imports(path.read_text()))


def test_the_check_reads_imports_at_any_depth() -> None:
    source = "import os\nfrom services.intake import x\ndef f():\n    import sqlalchemy\n"
    assert set(imports(source)) >= {"os", "services.intake", "sqlalchemy"}


def test_shared_imports_no_service_and_nothing_above() -> None:
    wrong = {
        module: name
        for module, names in _modules("shared")
        for name in names
        if name.split(".")[0] in ("services", "aiguillage", "bench")
    }
    assert not wrong, wrong


def test_no_service_imports_another_or_anything_above() -> None:
    wrong = []
    for service in SERVICES:
        for module, names in _modules(f"services/{service}"):
            for name in names:
                parts = name.split(".")
                above = parts[0] in ("aiguillage", "bench")
                another = parts[0] == "services" and len(parts) > 1 and parts[1] != service
                if above or another:
                    wrong.append(f"{module}: {name}")
    assert not wrong, wrong


def test_the_command_reaches_a_service_through_its_package_or_its_app() -> None:
    allowed = {f"services.{s}" for s in SERVICES} | {f"services.{s}.app" for s in SERVICES}
    wrong = [
        f"{module}: {name}"
        for module, names in _modules("aiguillage")
        for name in names
        if name.startswith("services.")
        # ``from services.intake import x`` reads as services.intake and services.intake.x
        and name not in allowed
        and name.rsplit(".", 1)[0] not in allowed
    ]
    assert not wrong, wrong


def test_a_service_s_domain_does_no_io() -> None:
    wrong = [
        f"{module}: {name}"
        for service in SERVICES
        for module, names in _modules(f"services/{service}/domain")
        for name in names
        if name.split(".")[0] in IO
    ]
    assert not wrong, wrong
