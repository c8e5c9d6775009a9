"""The pipeledger server on PostgreSQL: recording with 1 and 8 concurrent clients, run view,
lineage and cache look-up latencies, through the server (the ``rest`` flavor) and directly.

    python -m benchmarks.server                  # R = 40 runs per client (400 steps each)
    python -m benchmarks.server --runs 100 --workers 2

Each figure is measured in this one invocation on a fresh database per mode, so the modes
compare on the same machine at the same time: straight to PostgreSQL, through a server without
users (``server init`` never ran: every caller is anonymous), and through a server with users,
where every request carries an API key that the server checks against the database (as a team's
server does). A client is a process recording whole runs (10
steps) as the sequential orchestrator does: the first step's ``start_step``, each step's end with
the next one's start (``finish_and_start``: one request), the last one's ``finish_step``;
``BENCH_HELD=0`` records a start and a finish apart (two requests per step), for an A/B.
Throughput is all clients' steps over the wall time from the first start to the last finish.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.run import scratch_database
from benchmarks.workload import STEPS, cache_key

HERE = Path(__file__).resolve().parent
CLI = "from pipeledger.cli.main import main; main()"


def client(backend: str, first: int, runs: int) -> None:
    """One recording client: prints its start and end times (after opening the store)."""
    from benchmarks.systems.pipeledger_store import System

    with tempfile.TemporaryDirectory() as tmp:
        system = System(Path(tmp), backend)
        start = time.time()
        for run in range(first, first + runs):
            system.record_named_run(run, f"run-{run}")
        end = time.time()
        system.close()
    print(json.dumps({"start": start, "end": end}))


def record(backend: str, clients: int, runs: int, env: dict[str, str], offset: int = 0) -> float:
    """Steps per second of ``clients`` processes recording ``runs`` runs each (numbered from
    ``offset + 1``)."""
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.server",
                "--client",
                backend,
                "--first",
                str(offset + 1 + c * runs),
                "--runs",
                str(runs),
            ],
            cwd=HERE.parent,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            text=True,
        )
        for c in range(clients)
    ]
    times = []
    for process in processes:
        out, _ = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a {backend} client failed")
        times.append(json.loads(out.strip().splitlines()[-1]))
    wall = max(t["end"] for t in times) - min(t["start"] for t in times)
    return clients * runs * STEPS / wall


def latencies(backend: str, total_runs: int, env: dict[str, str]) -> dict[str, float]:
    """p50 of the run view, lineage and cache look-up (milliseconds), from one client."""
    os.environ.update(env)
    from benchmarks.systems.pipeledger_store import System

    with tempfile.TemporaryDirectory() as tmp:
        system = System(Path(tmp), backend)
        rng = random.Random(7)
        view = [_timed(lambda: system.run_view(rng.randint(1, total_runs))) for _ in range(200)]
        store = system.store
        finals = []
        for _ in range(20):
            run = store.get_run(f"run-{rng.randint(1, total_runs)}")
            steps = store.list_step_runs(run.id)
            finals.append(next(io.artifact.id for io in store.list_step_io([steps[-1].id]) if io.direction == "output"))
        lineage = [_timed(lambda a=a: store.lineage(artifact_id=a, direction="upstream")) for a in finals]
        keys = [cache_key(rng.randint(1, total_runs), rng.randint(0, STEPS - 1)) for _ in range(500)]
        cache = [_timed(lambda k=k: store.find_cached_step(k)) for k in keys]
        system.close()
    return {
        "run_view_ms": statistics.median(view),
        "lineage_ms": statistics.median(lineage),
        "cache_ms": statistics.median(cache),
    }


def _timed(call: Any) -> float:
    start = time.perf_counter()
    call()
    return (time.perf_counter() - start) * 1000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(
    database_url: str, workers: int, directory: Path, *, users: bool = False
) -> tuple[subprocess.Popen[bytes], str, str | None]:
    """A server process in front of ``database_url``, ready; its URL, and with ``users`` the API
    key of its first administrator (``pipeledger server init``)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    home = directory / "server-home"
    env = {**os.environ, "PIPELEDGER_HOME": str(home)}
    for args in (
        [
            "metadata-store",
            "register",
            "db",
            "--flavor=postgresql",
            f"--host={url.host}",
            f"--port={url.port}",
            f"--database={url.database}",
            f"--username={url.username}",
        ],
        ["stack", "register", "served", "-m", "db"],
    ):
        subprocess.run([sys.executable, "-c", CLI, *args], env=env, check=True, capture_output=True)
    key = None
    if users:
        init = [sys.executable, "-c", CLI, "server", "init", "--stack", "served", "--admin", "bench"]
        lines = subprocess.run(init, env=env, check=True, capture_output=True, text=True).stdout.splitlines()
        key = next(line.strip() for line in lines if line.startswith("pl_"))  # printed alone on its line
    port = free_port()
    log = open(directory / "server.log", "wb")  # noqa: SIM115 - the server's lifetime
    server = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            "server",
            "start",
            "--stack",
            "served",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            with urllib.request.urlopen(base + "/ready", timeout=1):
                return server, base, key
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not become ready")


def measure(mode: str, runs: int, workers: int) -> dict[str, Any]:
    """Every figure of one mode (``direct``, ``server`` or ``users``: a server with users) on a
    fresh PostgreSQL database."""
    with scratch_database("postgresql") as url, tempfile.TemporaryDirectory() as tmp:
        env = {"BENCH_POSTGRESQL_URL": url}
        server = None
        if mode != "direct":
            server, base, key = start_server(url, workers, Path(tmp), users=mode == "users")
            env["BENCH_REST_URL"] = base
            if key is not None:
                env["BENCH_REST_TOKEN"] = key
        backend = "postgresql" if mode == "direct" else "rest"
        try:
            one = record(backend, 1, runs, env)
            eight = record(backend, 8, runs, env, offset=runs)
            figures = latencies(backend, 9 * runs, env)
        finally:
            if server is not None:
                server.terminate()
                server.wait()
    return {"mode": mode, "steps_per_s_1": one, "steps_per_s_8": eight, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=40, help="runs per client (10 steps each)")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        client(args.client, args.first, args.runs)
        return
    rows = [measure(mode, args.runs, args.workers) for mode in ("direct", "server", "users")]
    print(f"\n### pipeledger server on PostgreSQL: R = {args.runs} runs per client, {args.workers} server workers\n")
    print("| phase | direct to PostgreSQL | through the server | through the server, with users (API key) |")
    print("|---|---|---|---|")
    for key, label in (
        ("steps_per_s_1", "record, 1 client (steps/s)"),
        ("steps_per_s_8", "record, 8 clients (steps/s)"),
        ("run_view_ms", "run view p50 (ms)"),
        ("lineage_ms", "lineage p50 (ms)"),
        ("cache_ms", "cache look-up p50 (ms)"),
    ):
        print(f"| {label} | {' | '.join(f'{row[key]:,.2f}' for row in rows)} |")


if __name__ == "__main__":
    main()
