"""The cost of a referral on a database that holds a wave's history (issue 32).

    python bench/history.py [--sizes 0 100000 1000000] [--sqlite-sizes 0 100000]
                            [--rate 10] [--seconds 30] [--template 400]

1. **A template** of what a referral leaves behind: the four services on fresh
   PostgreSQL databases take ``--template`` referrals through the whole pipeline; every
   row they wrote (inbox, outbox, referrals, identities, status history, cases,
   decisions, appointments, bookings, origins, arrivals, notifications and their tries,
   contacts, referrers, centre appointments...) is read back, table by table, with the
   services' own table definitions (``store/tables.py``, ``shared/messaging_tables.py``).
2. **History, for each size N**: fresh databases, the services' migrations run, then
   N referrals' rows copied in (COPY on PostgreSQL, executemany on SQLite): the
   template's rows again and again, each copy with fresh ids (every UUID in every
   column and body: its last 12 digits are the copy's number) and its times moved into
   the past by a step as long as the template's own span of slots, so that copies never
   share a slot, an id or a reference. The oldest copy goes in first (the outbox's
   ``seq`` keeps its order). Then ``VACUUM ANALYZE`` (autovacuum is off on this server)
   and the services start on it, with the purge off (what a month without one leaves).
3. **The pipeline at a fixed rate** (``--rate`` referrals/s for ``--seconds``, after a
   warm-up): CPU per referral of each service, of PostgreSQL (the backends of the four
   databases and the server's writers) and of RabbitMQ; p50/p99 from submission to the
   centre's notification; on PostgreSQL the statements (``pg_stat_statements``) whose
   time per call grew most against N = 0.

The last line is ``history cost ratio: X.XX``: CPU per referral of the four services and
PostgreSQL at the largest PostgreSQL size over that at 0.

``pg_stat_statements`` must be loaded by the server (``shared_preload_libraries``). On
the local server, as root, the bench adds it in ``conf.d/95-pg-stat-statements.conf``
and restarts the cluster (``pg_ctlcluster --skip-systemctl-redirect 15 main restart``)
when it is not loaded yet, once; elsewhere it says what to do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path
from typing import Any

import asyncpg
from pipeline import centres, referral
from rich.console import Console
from rich.table import Table as RichTable
from sqlalchemy import JSON, Date, DateTime, Integer, MetaData, Table
from sqlalchemy.dialects import sqlite as sqlite_dialect
from stack import BROKER, POSTGRES, run_bench, running_stack, write_results

from aiguillage.demo import wait_for_drain
from aiguillage.observer import FINAL
from shared.db import Database
from shared.events import Envelope
from shared.messaging_tables import metadata as messaging_metadata
from shared.migrations import upgrade
from shared.publisher import EventPublisher
from shared.settings import ServiceName

console = Console(width=160)
SERVICES = [s.value for s in ServiceName]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Tables that hold what is current, not history: a copy of them would be a waiting
# list or a backlog that no wave leaves behind.
CURRENT_ONLY = {"waitlist", "deferred_outcomes", "alembic_version"}
SLOT = timedelta(minutes=15)
# The history is what a month without a purge leaves: the services' own purge (every
# 6 hours by default, 7 days of outbox and inbox) would delete part of it mid-bench.
ENV = {"AIGUILLAGE_PURGE_INTERVAL_MINUTES": "0"}
PG_CONF = Path("/etc/postgresql/15/main/conf.d/95-pg-stat-statements.conf")


# -- pg_stat_statements ----------------------------------------------------------------


async def ensure_pg_stat_statements() -> None:
    admin = await asyncpg.connect(POSTGRES)
    try:
        loaded = "pg_stat_statements" in (await admin.fetchval("SHOW shared_preload_libraries"))
    finally:
        await admin.close()
    if loaded:
        return
    if not PG_CONF.parent.is_dir() or os.geteuid() != 0:
        raise SystemExit(
            "pg_stat_statements is not loaded: add shared_preload_libraries = "
            "'pg_stat_statements' to postgresql.conf and restart the server"
        )
    console.print("[yellow]loading pg_stat_statements: restarting the local PostgreSQL")
    await asyncio.to_thread(_load_pg_stat_statements)
    await asyncio.sleep(1)


def _load_pg_stat_statements() -> None:
    PG_CONF.write_text(
        "# bench/history.py: per-statement figures\n"
        "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = top\n"
    )
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"], check=True
    )


# -- the services' tables --------------------------------------------------------------


def service_tables(service: str) -> list[Table]:
    """The service's tables in dependency order, as its migrations' env.py names them."""
    own: MetaData = import_module(f"services.{service}.store.tables").metadata
    tables = [*own.sorted_tables, *messaging_metadata.sorted_tables]
    return [t for t in tables if t.name not in CURRENT_ONLY]


def identity_columns(table: Table) -> list[str]:
    """The columns that tell one row from another: the primary key, else every column."""
    return [c.name for c in table.primary_key.columns] or [c.name for c in table.columns]


def serial_column(table: Table) -> str | None:
    """An auto-incremented integer key (outbox.seq, arrivals.id): left to the database."""
    column = table.autoincrement_column
    return column.name if column is not None and isinstance(column.type, Integer) else None


def unique_keys(table: Table) -> list[list[str]]:
    keys = [[c.name for c in table.primary_key.columns]]
    keys += [
        [c.name for c in constraint.columns]
        for constraint in table.constraints
        if constraint.__class__.__name__ == "UniqueConstraint"
    ]
    keys += [[c.name for c in index.columns] for index in table.indexes if index.unique]
    return [k for k in keys if k]


# -- the template ----------------------------------------------------------------------


@dataclass
class TableTemplate:
    table: Table
    columns: list[str]  # what is copied (the serial key left out)
    baseline: list[tuple[Any, ...]]  # rows written before the template's referrals
    new: list[tuple[Any, ...]]  # rows the template's referrals wrote
    cloned: bool = True


@dataclass
class Template:
    referrals: int
    tables: dict[str, list[TableTemplate]]  # per service
    step: timedelta  # how far back each copy goes past the one after it
    first: timedelta  # the newest copy's shift
    skipped: list[str] = field(default_factory=list)


async def read_rows(connection: asyncpg.Connection, table: Table) -> list[asyncpg.Record]:
    names = ", ".join(f'"{c.name}"' for c in table.columns)
    return await connection.fetch(f'SELECT {names} FROM "{table.name}"')


async def snapshot_keys(urls: dict[str, str]) -> dict[str, dict[str, set[tuple[Any, ...]]]]:
    keys: dict[str, dict[str, set[tuple[Any, ...]]]] = {}
    for service, url in urls.items():
        connection = await asyncpg.connect(url)
        try:
            keys[service] = {}
            for table in service_tables(service):
                ident = identity_columns(table)
                rows = await read_rows(connection, table)
                keys[service][table.name] = {tuple(r[c] for c in ident) for r in rows}
        finally:
            await connection.close()
    return keys


def _cloneable(table: Table, new: list[tuple[Any, ...]], columns: list[str]) -> bool:
    """Copies of these rows can never collide: every unique key of the table holds an
    id (a UUID in every row), a time (moved by a step longer than their span) or the
    serial key."""
    serial = serial_column(table)
    for key in unique_keys(table):
        if serial in key:
            continue
        ok = False
        for name in key:
            column = table.c[name]
            if isinstance(column.type, DateTime):
                ok = True
            elif name in columns:
                index = columns.index(name)
                ok = all(isinstance(r[index], str) and UUID.search(r[index]) for r in new)
            if ok:
                break
        if not ok:
            return False
    return True


async def read_template(
    urls: dict[str, str], before: dict[str, dict[str, set[tuple[Any, ...]]]], referrals: int
) -> Template:
    tables: dict[str, list[TableTemplate]] = {}
    skipped: list[str] = []
    for service, url in urls.items():
        connection = await asyncpg.connect(url)
        try:
            tables[service] = []
            for table in service_tables(service):
                serial = serial_column(table)
                columns = [c.name for c in table.columns if c.name != serial]
                ident = identity_columns(table)
                old, new = [], []
                for record in await read_rows(connection, table):
                    row = tuple(record[c] for c in columns)
                    known = tuple(record[c] for c in ident) in before[service][table.name]
                    (old if known else new).append(row)
                cloned = bool(new) and _cloneable(table, new, columns)
                if new and not cloned:
                    # What the referrals did not write one by one (the data keys, the
                    # centres, a quota's window): loaded once, as it is.
                    skipped.append(f"{service}.{table.name}")
                    old, new = old + new, []
                tables[service].append(TableTemplate(table, columns, old, new, cloned))
        finally:
            await connection.close()
    step, first = _steps(tables)
    return Template(referrals, tables, step, first, skipped)


def _steps(tables: dict[str, list[TableTemplate]]) -> tuple[timedelta, timedelta]:
    """The step between copies: the span of the times in the tables' unique keys (a slot,
    at least), in whole slots; and the newest copy's shift, so that its last slot ends
    before the template began."""
    times: list[datetime] = []
    created: list[datetime] = []
    for templates in tables.values():
        for t in templates:
            keyed = {n for key in unique_keys(t.table) for n in key}
            for index, name in enumerate(t.columns):
                if isinstance(t.table.c[name].type, DateTime):
                    values = [r[index] for r in t.new if r[index] is not None]
                    (times if name in keyed else created).extend(values)
    if not times:
        times = created
    start = min(created or times)
    span = max(times) - min(times)
    step = SLOT * (int(span / SLOT) + 1)
    first = SLOT * (int(max(timedelta(0), max(times) - start) / SLOT) + 1)
    return step, first


# -- copies ----------------------------------------------------------------------------


def _plan(value: Any) -> Any:
    """How a template value becomes a copy's: a string with UUIDs is kept as its pieces
    around the UUIDs' last 12 digits (``suffix.join(pieces)``)."""
    if isinstance(value, str) and UUID.search(value):
        pieces, last = [], 0
        for match in UUID.finditer(value):
            pieces.append(value[last : match.start() + 24])
            last = match.end()
        pieces.append(value[last:])
        return ("ids", pieces)
    if isinstance(value, datetime):
        return ("time", value)
    return ("same", value)


def copies(
    template: TableTemplate, count: int, step: timedelta, first: timedelta
) -> Iterator[tuple[Any, ...]]:
    """``count`` copies of the template's new rows, the oldest first."""
    plans = [[_plan(v) for v in row] for row in template.new]
    for k in range(count - 1, -1, -1):
        suffix = f"{k + 1:012x}"
        shift = first + step * k
        for plan in plans:
            yield tuple(
                suffix.join(v) if kind == "ids" else v - shift if kind == "time" else v
                for kind, v in plan
            )


# -- loading ---------------------------------------------------------------------------


async def migrate(url: str, service: str) -> None:
    database = Database(url)
    try:
        await upgrade(database, f"services.{service}:migrations")
    finally:
        await database.engine.dispose()


def _pg_values(
    template: TableTemplate, rows: Iterator[tuple[Any, ...]]
) -> Iterator[tuple[Any, ...]]:
    json_at = [
        i for i, n in enumerate(template.columns) if isinstance(template.table.c[n].type, JSON)
    ]
    if not json_at:
        yield from rows
        return
    for row in rows:
        values = list(row)
        for i in json_at:
            if values[i] is not None and not isinstance(values[i], str):
                values[i] = json.dumps(values[i])
        yield tuple(values)


async def load_postgres(url: str, service: str, template: Template, n: int) -> int:
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    count = n // template.referrals if n else 0
    written = 0
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        for t in template.tables[service]:
            rows: list[tuple[Any, ...]] = list(t.baseline)
            await _copy(connection, t, rows)
            written += len(rows)
            if t.cloned and count:
                chunk: list[tuple[Any, ...]] = []
                for row in copies(t, count, template.step, template.first):
                    chunk.append(row)
                    if len(chunk) >= 50_000:
                        written += await _copy(connection, t, chunk)
                        chunk = []
                written += await _copy(connection, t, chunk)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()
    return written


async def _copy(
    connection: asyncpg.Connection, t: TableTemplate, rows: list[tuple[Any, ...]]
) -> int:
    if rows:
        await connection.copy_records_to_table(
            t.table.name, records=list(_pg_values(t, iter(rows))), columns=t.columns
        )
    return len(rows)


def _sqlite_converters(t: TableTemplate) -> list[Any]:
    dialect = sqlite_dialect.dialect()
    converters: list[Any] = []
    for name in t.columns:
        column_type = t.table.c[name].type
        if isinstance(column_type, JSON):
            converters.append(lambda v: v if v is None or isinstance(v, str) else json.dumps(v))
        elif isinstance(column_type, DateTime | Date):
            process = column_type.dialect_impl(dialect).bind_processor(dialect)

            def to_text(v: Any, process: Any = process) -> Any:
                if isinstance(v, datetime):
                    v = v.astimezone(UTC).replace(tzinfo=None)
                return process(v) if process and v is not None else v

            converters.append(to_text)
        else:
            converters.append(lambda v: int(v) if isinstance(v, bool) else v)
    return converters


def load_sqlite(path: str, service: str, template: Template, n: int) -> int:
    count = n // template.referrals if n else 0
    written = 0
    connection = sqlite3.connect(path)
    try:
        for t in template.tables[service]:
            converters = _sqlite_converters(t)
            names = ", ".join(f'"{c}"' for c in t.columns)
            marks = ", ".join("?" for _ in t.columns)
            sql = f'INSERT INTO "{t.table.name}" ({names}) VALUES ({marks})'

            def converted(
                rows: Any, converters: list[Any] = converters
            ) -> Iterator[tuple[Any, ...]]:
                for row in rows:
                    yield tuple(f(v) for f, v in zip(converters, row, strict=True))

            connection.executemany(sql, converted(t.baseline))
            written += len(t.baseline)
            if t.cloned and count:
                connection.executemany(
                    sql, converted(copies(t, count, template.step, template.first))
                )
                written += count * len(t.new)
            connection.commit()
        connection.execute("ANALYZE")
        connection.commit()
    finally:
        connection.close()
    return written


async def load_history(environment: dict[str, str], template: Template, n: int) -> float:
    """Migrate each service's database and load N referrals' history; seconds taken."""
    started = time.monotonic()
    written = 0
    for service in SERVICES:
        url = environment.get(f"AIGUILLAGE_{service.upper()}_DATABASE_URL")
        if url is None:
            path = f"{environment['AIGUILLAGE_DATA_DIR']}/{service}.db"
            await migrate(f"sqlite+aiosqlite:///{path}", service)
            written += await asyncio.to_thread(load_sqlite, path, service, template, n)
        else:
            await migrate(url, service)
            written += await load_postgres(url, service, template, n)
    elapsed = time.monotonic() - started
    console.print(f"  history of {n:,} referrals: {written:,} rows in {elapsed:.0f} s")
    return elapsed


# -- measuring -------------------------------------------------------------------------


def _cpu(pid: int) -> float:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rabbitmq_pids() -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"beam.smp" in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


async def _postgres_pids(databases: list[str]) -> list[int]:
    """The backends of the bench's databases and the server's own writers (which write
    everyone's WAL: the machine's other users are in it too, a little)."""
    if not databases:
        return []
    admin = await asyncpg.connect(POSTGRES)
    try:
        rows = await admin.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = ANY($1::text[]) OR backend_type"
            " IN ('walwriter', 'checkpointer', 'background writer')",
            databases,
        )
    finally:
        await admin.close()
    return [r["pid"] for r in rows]


async def cpu_groups(stack: Any) -> dict[str, dict[int, float]]:
    groups = {name: {p.pid: _cpu(p.pid)} for name, p in stack.services.procs.items()}
    groups["postgresql"] = {p: _cpu(p) for p in await _postgres_pids(stack.databases)}
    groups["rabbitmq"] = {p: _cpu(p) for p in _rabbitmq_pids()}
    return groups


async def cpu_ms_per_referral(
    stack: Any, before: dict[str, dict[int, float]], n: int
) -> dict[str, float]:
    """CPU ms per referral since ``before``; a backend opened since counts from zero."""
    after = await cpu_groups(stack)
    spent = {}
    for group, pids in after.items():
        used = sum(cpu - before.get(group, {}).get(pid, 0.0) for pid, cpu in pids.items())
        spent[group] = round(used * 1000 / n, 2)
    return spent


def _in(database: str) -> str:
    return f"{POSTGRES.rsplit('/', 1)[0]}/{database}"


async def statement_times(databases: list[str]) -> dict[str, dict[str, float]]:
    """Per ``service: statement``: calls and mean time (ms), from pg_stat_statements."""
    if not databases:
        return {}
    admin = await asyncpg.connect(_in(databases[0]))
    try:
        rows = await admin.fetch(
            "SELECT d.datname, s.query, s.calls, s.mean_exec_time, s.rows"
            " FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid"
            " WHERE d.datname = ANY($1::text[]) AND s.calls > 0",
            databases,
        )
    finally:
        await admin.close()
    merged: dict[str, dict[str, float]] = {}
    for r in rows:
        key = f"{r['datname'].rsplit('_', 1)[1]}: {_normalised(r['query'])}"
        figures = merged.setdefault(key, {"calls": 0, "total_ms": 0.0, "rows": 0})
        figures["calls"] += r["calls"]
        figures["total_ms"] += r["mean_exec_time"] * r["calls"]
        figures["rows"] += r["rows"]
    return {
        key: {
            "calls": f["calls"],
            "mean_ms": f["total_ms"] / f["calls"],
            "rows_per_call": f["rows"] / f["calls"],
        }
        for key, f in merged.items()
    }


async def table_scans(databases: list[str]) -> dict[str, tuple[int, int]]:
    """Per ``service.table``: sequential scans so far and the rows they read."""
    scans: dict[str, tuple[int, int]] = {}
    for name in databases:
        connection = await asyncpg.connect(_in(name))
        try:
            for r in await connection.fetch(
                "SELECT relname, seq_scan, seq_tup_read FROM pg_stat_user_tables"
            ):
                key = f"{name.rsplit('_', 1)[1]}.{r['relname']}"
                scans[key] = (r["seq_scan"], r["seq_tup_read"])
        finally:
            await connection.close()
    return scans


def whole_reads(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], n: int
) -> dict[str, dict[str, float]]:
    """The tables read by sequential scans in the window: scans and rows read per
    referral (a table of history read whole shows as thousands of rows a referral)."""
    reads = {}
    for key, (scans, rows) in after.items():
        was = before.get(key, (0, 0))
        if rows - was[1] > 0:
            reads[key] = {
                "scans_per_referral": round((scans - was[0]) / n, 2),
                "rows_per_referral": round((rows - was[1]) / n, 1),
            }
    return dict(sorted(reads.items(), key=lambda kv: -kv[1]["rows_per_referral"]))


# The IN lists and multi-row VALUES of the services' statements are as long as their
# batch: one statement for all lengths.
_PARAMS = r"\(\$\d+::[A-Z ]+(?:, \$\d+::[A-Z ]+)*\)"
_LIST = re.compile(_PARAMS + r"(?:, " + _PARAMS + r")*")


def _normalised(query: str) -> str:
    return _LIST.sub("(…)", " ".join(query.split()))


async def reset_statements(databases: list[str]) -> None:
    if not databases:
        return
    # The view and its functions are those of the extension, created in the bench's
    # databases (load_postgres); they see every database's statements.
    admin = await asyncpg.connect(_in(databases[0]))
    try:
        for name in databases:
            oid = await admin.fetchval("SELECT oid FROM pg_database WHERE datname = $1", name)
            # PostgreSQL 15: (userid, dbid, queryid), 0 for all: this database's only.
            await admin.execute("SELECT pg_stat_statements_reset(0, $1::oid, 0)", oid)
    finally:
        await admin.close()


async def push(
    publisher: EventPublisher, observer: Any, count: int, rate: float | None
) -> set[str]:
    """``count`` referrals, each reference a UUID (so that copies of the template's
    referrals get references of their own), at ``rate`` a second (None: at once)."""
    rng = __import__("random").Random(len(observer.tracks))
    sent: set[str] = set()
    start = time.perf_counter()
    for i in range(count):
        reference = str(uuid.uuid4())
        observer.submitted(reference)
        sent.add(reference)
        envelope = Envelope.wrap(referral(rng, reference), source="gp", correlation_id=reference)
        await publisher.publish_envelope(envelope, "referral.submitted")
        if rate:
            delay = start + (i + 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
    return sent


async def until_notified(observer: Any, references: set[str], timeout: float) -> None:
    """Until every referral is in a final state (booked and its centre told, for nearly
    all; one the policy waitlists is final too)."""
    deadline = time.monotonic() + timeout
    while any(observer.tracks[r].state not in FINAL for r in references):
        if time.monotonic() > deadline:
            missing = sum(observer.tracks[r].state not in FINAL for r in references)
            raise TimeoutError(f"{missing} referrals not in a final state")
        await asyncio.sleep(0.05)


async def activate_centres(publisher: EventPublisher, namespace: str) -> None:
    for centre in centres():
        await publisher.publish(centre, correlation_id=centre.centre_id)
    await wait_for_drain(BROKER, f"{namespace}.scheduler.centres")
    await wait_for_drain(BROKER, f"{namespace}.notifier.centres")
    await asyncio.sleep(1)


def _dsns(stack: Any) -> dict[str, str]:
    base = POSTGRES.rsplit("/", 1)[0]
    return {name.rsplit("_", 1)[1]: f"{base}/{name}" for name in stack.databases}


async def settled(urls: dict[str, str], timeout: float = 120) -> None:
    """Every outbox relayed and every notification out: the template's rows are final."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = 0
        for service, url in urls.items():
            connection = await asyncpg.connect(url)
            try:
                left += await connection.fetchval(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                )
                if service == "notifier":
                    left += await connection.fetchval(
                        "SELECT count(*) FROM notifications WHERE status IN ('pending', 'sending')"
                    )
            finally:
                await connection.close()
        if not left:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError("the template's outboxes did not empty")


async def capture_template(referrals: int) -> Template:
    ids = [c.centre_id for c in centres()]
    with console.status(f"template: {referrals} referrals through the pipeline..."):
        async with (
            running_stack(False, ids, env=ENV) as stack,
            EventPublisher(BROKER, stack.namespace, "bench") as publisher,
        ):
            await activate_centres(publisher, stack.namespace)
            urls = _dsns(stack)
            before = await snapshot_keys(urls)
            sent = await push(publisher, stack.observer, referrals, None)
            await until_notified(stack.observer, sent, 300)
            await settled(urls)
            template = await read_template(urls, before, referrals)
    rows = sum(len(t.new) for ts in template.tables.values() for t in ts if t.cloned)
    console.print(
        f"template: {rows / referrals:.1f} rows a referral; copies {template.step} apart"
        + (
            f"; not copied (no id in a unique key): {', '.join(template.skipped)}"
            if template.skipped
            else ""
        )
    )
    return template


def _percentile(values: list[float], q: float) -> float:
    return values[max(0, int(len(values) * q) - 1)]


async def measure(
    size: int, sqlite: bool, template: Template, rate: float, seconds: float
) -> dict[str, Any]:
    ids = [c.centre_id for c in centres()]
    loaded: list[float] = []

    data_dirs: list[str] = []

    async def load(environment: dict[str, str]) -> None:
        data_dirs.append(environment["AIGUILLAGE_DATA_DIR"])
        loaded.append(await load_history(environment, template, size))

    async with (
        running_stack(sqlite, ids, env=ENV, before_start=load) as stack,
        EventPublisher(BROKER, stack.namespace, "bench") as publisher,
    ):
        await activate_centres(publisher, stack.namespace)
        await until_notified(stack.observer, await push(publisher, stack.observer, 30, None), 300)
        await reset_statements(stack.databases)
        scans = await table_scans(stack.databases)
        before = await cpu_groups(stack)
        sent = await push(publisher, stack.observer, int(rate * seconds), rate)
        await until_notified(stack.observer, sent, 600)
        cpu = await cpu_ms_per_referral(stack, before, len(sent))
        statements = await statement_times(stack.databases)
        reads = whole_reads(scans, await table_scans(stack.databases), len(sent))
    for folder in data_dirs:  # SQLite's files of a million referrals: gigabytes
        shutil.rmtree(folder, ignore_errors=True)
    tracks = [stack.observer.tracks[r] for r in sent]
    latencies = sorted(
        1000 * (t.notified_at - t.submitted_at) for t in tracks if t.notified_at is not None
    )
    return {
        "size": size,
        "database": "sqlite" if sqlite else "postgresql",
        "load_s": round(loaded[0], 1),
        "referrals_measured": len(sent),
        "cpu_ms_per_referral": cpu,
        "latency_ms": {
            "p50": round(statistics.median(latencies), 1),
            "p99": round(_percentile(latencies, 0.99), 1),
        },
        "statements": statements,
        "sequential_reads": reads,
    }


# -- the report ------------------------------------------------------------------------


def services_and_postgres(run: dict[str, Any]) -> float:
    cpu = run["cpu_ms_per_referral"]
    return sum(cpu.get(s, 0.0) for s in SERVICES) + cpu.get("postgresql", 0.0)


def grown(run: dict[str, Any], base: dict[str, Any], top: int = 10) -> list[dict[str, Any]]:
    """The statements whose mean time per call grew most against ``base`` (ms)."""
    rows = []
    for key, figures in run["statements"].items():
        was = base["statements"].get(key)
        if was is None or figures["calls"] < 5:
            continue
        rows.append(
            {
                "statement": key,
                "calls": figures["calls"],
                "ms_per_call_at_0": round(was["mean_ms"], 3),
                "ms_per_call": round(figures["mean_ms"], 3),
                "growth_ms": round(figures["mean_ms"] - was["mean_ms"], 3),
            }
        )
    return sorted(rows, key=lambda r: -r["growth_ms"])[:top]


def print_run(run: dict[str, Any], base: dict[str, Any] | None) -> None:
    table = RichTable(title=f"{run['database']}, {run['size']:,} referrals of history")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("history loaded in (s)", f"{run['load_s']:.0f}")
    for group, ms in run["cpu_ms_per_referral"].items():
        table.add_row(f"CPU per referral, {group} (ms)", f"{ms:.1f}")
    table.add_row(
        "CPU per referral, services + PostgreSQL (ms)", f"{services_and_postgres(run):.1f}"
    )
    lat = run["latency_ms"]
    table.add_row(
        f"latency p50 / p99 (ms), {run['referrals_measured']} referrals",
        f"{lat['p50']:.0f} / {lat['p99']:.0f}",
    )
    console.print(table)
    for key, figures in list(run.get("sequential_reads", {}).items())[:5]:
        console.print(
            f"  read by sequential scans: {key}, {figures['rows_per_referral']:,} rows a referral"
            f" ({figures['scans_per_referral']} scans)"
        )
    if base is not None and run["statements"]:
        run["grown"] = grown(run, base)
        console.print("  statements whose time per call grew most (ms per call, at 0 -> now):")
        for row in run["grown"]:
            console.print(
                f"  {row['growth_ms']:+8.3f}  {row['ms_per_call_at_0']:.3f}"
                f" -> {row['ms_per_call']:.3f}"
                f"  ({row['calls']} calls)  {row['statement'][:160]}"
            )


async def load_only(size: int, template: Template) -> None:
    """Databases ``history_<service>`` with N referrals' history, kept for EXPLAIN."""
    admin = await asyncpg.connect(POSTGRES)
    environment = {}
    try:
        for service in SERVICES:
            name = f"history_{service}"
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
            url = _in(name).replace("postgresql://", "postgresql+asyncpg://")
            environment[f"AIGUILLAGE_{service.upper()}_DATABASE_URL"] = url
    finally:
        await admin.close()
    await load_history(environment, template, size)
    console.print(f"kept: {', '.join(_in(f'history_{s}') for s in SERVICES)}")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.load_only is not None:
        await load_only(args.load_only, await capture_template(args.template))
        return {}
    if args.sizes:
        await ensure_pg_stat_statements()
    template = await capture_template(args.template)
    runs: list[dict[str, Any]] = []
    for sqlite, sizes in ((False, args.sizes), (True, args.sqlite_sizes)):
        base = None
        for size in sizes:
            console.print(
                f"[bold]{'SQLite' if sqlite else 'PostgreSQL'}, {size:,} referrals of history"
            )
            run = await measure(size, sqlite, template, args.rate, args.seconds)
            print_run(run, base)
            base = base or run
            runs.append(run)
    return {
        "when": datetime.now(UTC).isoformat(),
        "load_average": os.getloadavg(),
        "template_referrals": args.template,
        "copy_step_minutes": template.step.total_seconds() / 60,
        "rate": args.rate,
        "seconds": args.seconds,
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[0, 100_000, 1_000_000])
    parser.add_argument("--sqlite-sizes", type=int, nargs="*", default=None)
    parser.add_argument("--rate", type=float, default=10)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--template", type=int, default=400)
    parser.add_argument(
        "--load-only",
        type=int,
        metavar="N",
        help="only load N referrals' history into databases history_<service>, kept (EXPLAIN)",
    )
    args = parser.parse_args()
    if args.sqlite_sizes is None:
        # SQLite, the embedded default, at 0 and the second size (100,000 by default).
        args.sqlite_sizes = sorted({0, *args.sizes[1:2]}) if args.sizes else [0, 100_000]
    started = time.monotonic()
    result = run_bench(main_async(args))
    if not result:
        return
    result["wall_s"] = round(time.monotonic() - started)
    console.print(
        f"written {write_results('history', result)}; {result['wall_s']} s in all,"
        f" load average {result['load_average'][0]:.1f}"
    )
    postgres = [r for r in result["runs"] if r["database"] == "postgresql"]
    if postgres:
        ratio = services_and_postgres(postgres[-1]) / services_and_postgres(postgres[0])
    else:
        sqlite = [r for r in result["runs"] if r["database"] == "sqlite"]
        ratio = services_and_postgres(sqlite[-1]) / services_and_postgres(sqlite[0])
    print(f"history cost ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
