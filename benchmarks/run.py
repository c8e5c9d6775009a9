"""ledger-bench driver: measure every system at every size, print tables and ratios, save JSON lines.

    python -m benchmarks.run                 # R = 100, 1,000, 10,000, 100,000 (MLMD to 10,000; about 1.5 hours)
    python -m benchmarks.run --quick         # R = 100, 1,000
    python -m benchmarks.run --server        # pipeledger and a raw-driver floor on MariaDB and PostgreSQL
    python -m benchmarks.run --search        # the search phase (benchmarks/search.py), R = 1,000 and 100,000

Each (system, R) is measured in its own process (see benchmarks.worker), all in
this one invocation, so ratios compare figures taken on the same machine at the
same time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PHASES = [
    ("steps_per_s", "record (steps/s)", "higher"),
    ("list_ms", "list (ms)", "lower"),
    ("run_view_ms", "run view (ms)", "lower"),
    ("lineage_ms", "lineage (ms)", "lower"),
    ("cache_us", "cache look-up (µs)", "lower"),
    ("peak_rss_mib", "peak memory (MiB)", "lower"),
    ("db_mib", "database (MiB)", "lower"),
]


ADMIN_URLS = {
    "mysql": os.environ.get("BENCH_MYSQL_ADMIN_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    "postgresql": os.environ.get("BENCH_POSTGRESQL_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
}


@contextmanager
def scratch_database(backend: str) -> Iterator[str]:
    """A fresh database on the local server of ``backend`` for one measurement (dropped after)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = make_url(ADMIN_URLS[backend])
    name = f"pl_bench_{secrets.token_hex(4)}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name}"))
        engine.dispose()


def measure(system: str, runs: int, backend: str = "sqlite") -> dict[str, Any]:
    if backend != "sqlite":
        with scratch_database(backend) as url:
            return _measure(system, runs, backend, {f"BENCH_{backend.upper()}_URL": url})
    return _measure(system, runs, backend, {})


def _measure(system: str, runs: int, backend: str, env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.worker", "--system", system, "--runs", str(runs), "--backend", backend]
    result = subprocess.run(
        command, cwd=HERE.parent, capture_output=True, text=True, check=False, env={**os.environ, **env}
    )
    if result.returncode != 0:
        raise SystemExit(f"{system} at R={runs} failed:\n{result.stderr[-3000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b else "-"


def table(rows: dict[str, dict[str, Any]], runs: int, where: str = "") -> str:
    keys = list(rows)
    lines = [f"### R = {runs:,} runs ({runs * 10:,} steps){where}", ""]
    header = ["phase", *(rows[k]["system"] for k in keys)]
    pl_key = next((k for k in keys if k.startswith("pipeledger")), keys[0])
    pl = rows[pl_key]
    if "floor" in rows:
        header.append("pipeledger / floor")
    if "mlmd" in rows:
        header.append("MLMD / pipeledger")
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    measured_size = any(rows[k]["db_mib"] for k in keys)  # servers: not measured
    for key, label, better in PHASES:
        if key == "db_mib" and not measured_size:
            continue
        cells = [label, *(f"{rows[k][key]:,.1f}" if rows[k][key] >= 10 else f"{rows[k][key]:.3f}" for k in keys)]
        if "floor" in rows and pl:
            cells.append(ratio(pl[key], rows["floor"][key]))
        if "mlmd" in rows and pl:
            cells.append(ratio(rows["mlmd"][key], pl[key]) if better == "lower" else ratio(pl[key], rows["mlmd"][key]))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if "floor" not in rows and "mlmd" not in rows:
        return "\n".join(lines)
    if "floor" in rows and pl is not rows["floor"]:
        lines.append(targets(pl, rows["floor"], pl_key.rpartition("-")[2]))
        lines.append("")
    if "mlmd" in rows and pl is not rows["mlmd"]:
        lines.append(mlmd_targets(pl, rows["mlmd"]))
        lines.append("")
    lines.append(
        "Ratios: `pipeledger / floor` is pipeledger's figure over the floor's (for record throughput, higher is "
        "better; for times, lower is better). `MLMD / pipeledger` is how many times faster pipeledger is than ML "
        "Metadata (for record throughput: pipeledger's steps/s over MLMD's)."
    )
    return "\n".join(lines)


#: Issue 23's targets against the floor on the same database: (phase, bound, at least?). On a
#: server the floor is the raw driver's (benchmarks/systems/server_floor.py).
TARGETS = {
    "sqlite": [
        ("steps_per_s", 0.5, True),
        ("list_ms", 3.0, False),
        ("run_view_ms", 4.0, False),
        ("lineage_ms", 2.0, False),
        ("cache_us", 3.0, False),
    ],
    "server": [
        ("steps_per_s", 0.5, True),
        ("run_view_ms", 3.0, False),
        ("lineage_ms", 3.0, False),
        ("cache_us", 3.0, False),
    ],
}


def targets(pl: dict[str, Any], floor: dict[str, Any], backend: str) -> str:
    """One line: each target against the floor, its measured ratio and whether it is met."""
    labels = {key: label for key, label, _ in PHASES}
    parts = []
    for key, bound, at_least in TARGETS["sqlite" if backend == "sqlite" else "server"]:
        value = pl[key] / floor[key] if floor[key] else float("nan")
        met = value >= bound if at_least else value <= bound
        parts.append(f"{labels[key]} {value:.2f}× ({'≥' if at_least else '≤'} {bound}×: {'met' if met else 'MISSED'})")
    return "Targets against the floor: " + "; ".join(parts) + "."


#: Issue 23's targets against ML Metadata: (phase, how many times better pipeledger must be). For
#: record throughput, pipeledger's steps/s over MLMD's; for the others, MLMD's figure over
#: pipeledger's (1.0: no larger than MLMD's).
MLMD_TARGETS = [("steps_per_s", 10.0), ("run_view_ms", 3.0), ("peak_rss_mib", 1.0), ("db_mib", 1.0)]


def mlmd_targets(pl: dict[str, Any], mlmd: dict[str, Any]) -> str:
    """One line: each target against ML Metadata, the measured factor and whether it is met."""
    labels = {key: (label, better) for key, label, better in PHASES}
    parts = []
    for key, bound in MLMD_TARGETS:
        label, better = labels[key]
        if not pl[key] or not mlmd[key]:
            continue
        value = pl[key] / mlmd[key] if better == "higher" else mlmd[key] / pl[key]
        parts.append(f"{label} {value:.2f}× (≥ {bound}×: {'met' if value >= bound else 'MISSED'})")
    return "Targets against ML Metadata (how many times better): " + "; ".join(parts) + "."


def main() -> None:
    if "--search" in sys.argv:  # its own driver: bulk-loaded records, not recorded runs
        from benchmarks import search

        sys.argv.remove("--search")
        search.main()
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="R = 100 and 1,000 only")
    parser.add_argument("--runs", help="comma-separated sizes, e.g. 100,1000")
    parser.add_argument("--systems", default="floor,pipeledger,mlmd", help="comma-separated: floor,pipeledger,mlmd")
    parser.add_argument(
        "--server", action="store_true", help="pipeledger and the raw-driver floor on MariaDB and PostgreSQL"
    )
    parser.add_argument(
        "--mlmd-max", type=int, default=10000, help="largest R measured for ML Metadata (it records ~100 steps/s)"
    )
    parser.add_argument("--output", type=Path, default=HERE / "results", help="directory for the JSON lines")
    args = parser.parse_args()
    full = [100, 1000, 10000, 100000]
    sizes = [int(r) for r in args.runs.split(",")] if args.runs else [100, 1000] if args.quick else full
    backends = ["mysql", "postgresql"] if args.server else ["sqlite"]
    systems = ["floor", "pipeledger"] if args.server else args.systems.split(",")
    args.output.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = args.output / f"ledger-bench-{'server-' if args.server else ''}{stamp}.jsonl"
    print(
        f"ledger-bench v1 on {platform.node()} ({platform.platform()}), Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs; results in {out}",
        flush=True,
    )
    report = []
    with out.open("w") as sink:
        for runs in sizes:
            for backend in backends:  # on a server: its floor, then pipeledger, on the same server
                rows: dict[str, dict[str, Any]] = {}
                for system in systems:
                    if system == "mlmd" and runs > args.mlmd_max:
                        print(f"  skipping ML Metadata at R={runs} (--mlmd-max {args.mlmd_max})", flush=True)
                        continue
                    print(f"  measuring {system} ({backend}) at R={runs} ...", flush=True)
                    row = measure(system, runs, backend)
                    row["measured_at"] = stamp
                    sink.write(json.dumps(row) + "\n")
                    sink.flush()
                    rows["floor" if system == "floor" else row["key"]] = row
                text = table(rows, runs, f" on {backend}" if args.server else "")
                report.append(text)
                print("\n" + text + "\n", flush=True)
    (args.output / "latest.md").write_text("\n\n".join(report) + "\n")


if __name__ == "__main__":
    main()
