"""Several versions of the code through ``bench/pipeline.py``, one after the other in one
run on this machine, and their figures side by side: each change's before and after,
measured under the same conditions.

A variant is ``label=revision``, optionally ``+patch`` (a file under ``bench/patches/``
applied to that revision: a change undone by itself) and ``,NAME=value`` settings for the
services (``AIGUILLAGE_BATCH_MAX=1``: group commit off)::

    python bench/compare.py --n 1000 --rates 10 50 \\
        --variant before=ddf89b6 \\
        --variant "no-group-commit=HEAD,AIGUILLAGE_BATCH_MAX=1" \\
        --variant "eight-deliveries=HEAD+eight_deliveries.diff" \\
        --variant after=HEAD

Each revision is checked out in a temporary git worktree (removed afterwards) and run
with this virtual environment's Python, its own code first on the path. The raw relays
are measured in each run too: a ratio compares a variant with the broker at that moment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
console = Console()


@dataclass
class Variant:
    label: str
    revision: str
    patch: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Variant:
        label, _, rest = text.partition("=")
        spec, *settings = rest.split(",")
        revision, _, patch = spec.partition("+")
        env = dict(s.split("=", 1) for s in settings if s)
        if not label or not revision:
            raise argparse.ArgumentTypeError(f"not label=revision[+patch][,NAME=value]: {text}")
        return cls(label, revision, patch or None, env)


def git(*args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def run_variant(variant: Variant, root: Path, bench_args: list[str]) -> dict[str, Any]:
    commit = git("rev-parse", "--short", variant.revision)
    tree = root / variant.label
    git("worktree", "add", "--detach", str(tree), commit)
    try:
        if variant.patch:
            git("apply", str(HERE / "patches" / variant.patch), cwd=tree)
        env = {**os.environ, **variant.env, "PYTHONPATH": str(tree)}
        console.rule(f"{variant.label}: {commit}{' + ' + variant.patch if variant.patch else ''}")
        done = subprocess.run(
            [sys.executable, "bench/pipeline.py", *bench_args],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
        )
        written = re.findall(r"written (\S+\.json)", done.stdout)
        if done.returncode != 0 or not written:
            console.print(done.stdout[-3000:], done.stderr[-3000:], markup=False)
            raise SystemExit(f"{variant.label}: bench/pipeline.py failed ({done.returncode})")
        result: dict[str, Any] = json.loads((tree / written[-1]).read_text())
        result["commit"] = commit
        result["variant"] = variant.label
        result["patch"] = variant.patch
        result["settings"] = variant.env
        return result
    finally:
        git("worktree", "remove", "--force", str(tree))


def _lat(result: dict[str, Any], key: str, rate: str) -> str:
    found = result.get(key, {}).get(rate)
    if not found:
        return "-"
    return f"{found['p50']:.0f} / {found['p95']:.0f} / {found['p99']:.0f}"


def table(results: list[dict[str, Any]], rates: list[str]) -> Table:
    out = Table(title="bench/pipeline.py, variant by variant (same run, same machine)")
    out.add_column("figure")
    for r in results:
        settings = ",".join(f"{k}={v}" for k, v in r["settings"].items())
        head = f"{r['variant']}\n{r['commit']}{'+' + r['patch'] if r['patch'] else ''}"
        out.add_column(head + (f"\n{settings}" if settings else ""), justify="right")

    def row(name: str, cell: Any) -> None:
        out.add_row(name, *(cell(r) for r in results))

    row("raw 4 hops (msg/s)", lambda r: f"{r['raw_msgs_per_s']:.0f}")
    row(
        "raw like work (msg/s)",
        lambda r: f"{r['raw_like_work_msgs_per_s']:.0f} ({r['raw_like_work_hops']} hops)",
    )
    row("pipeline (referrals/s)", lambda r: f"{r['throughput']:.1f}")
    row(
        "ratio to raw like work",
        lambda r: f"{r['throughput'] / r['raw_like_work_msgs_per_s']:.2f}",
    )
    row(
        "CPU per referral, four services (ms)",
        lambda r: f"{sum(r['cpu_ms_per_referral'][s] for s in SERVICES):.1f}",
    )
    for name in (*SERVICES, "rabbitmq", "postgresql"):
        row(f"  CPU, {name} (ms)", lambda r, n=name: f"{r['cpu_ms_per_referral'].get(n, 0):.1f}")
    row(
        "transactions per referral",
        lambda r: (
            f"{sum(w['transactions'] for w in r['work_per_referral'].values()):.1f}"
            if r.get("work_per_referral")
            else "-"
        ),
    )
    row(
        "deliveries per referral",
        lambda r: (
            f"{sum(w['deliveries'] for w in r['work_per_referral'].values()):.1f}"
            if r.get("work_per_referral")
            else "-"
        ),
    )
    for rate in rates:
        row(f"latency at {rate}/s, p50/p95/p99 (ms)", lambda r, x=rate: _lat(r, "latency_ms", x))
        row(
            f"scheduler's stage at {rate}/s (ms)",
            lambda r, x=rate: _lat(r, "scheduler_stage_ms", x),
        )
    row("peak RSS, largest (MB)", lambda r: f"{max(r['peak_rss_mb'].values()):.0f}")
    return out


SERVICES = ("intake", "regulation", "scheduler", "notifier")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", type=Variant.parse, action="append", required=True)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 50.0])
    args = parser.parse_args()
    bench_args = ["--n", str(args.n), "--rates", *(f"{r:g}" for r in args.rates)]
    root = Path(tempfile.mkdtemp(prefix="aig-compare-"))
    results = []
    try:
        for variant in args.variant:
            results.append(run_variant(variant, root, bench_args))
    finally:
        shutil.rmtree(root, ignore_errors=True)
        git("worktree", "prune")
    rates = [str(float(r)) for r in args.rates]
    console.print(table(results, rates))
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = results[-1].get("when", "run").replace(":", "")[:15]
    path = out / f"compare-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    console.print(f"written {path}")


if __name__ == "__main__":
    main()
