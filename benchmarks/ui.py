"""ledger-bench phase ``ui``: the web UI's pages on a store of 100,000 runs (10 steps each).

    python -m benchmarks.ui                          # SQLite, R = 100,000
    python -m benchmarks.ui --runs 1000,100000 --backends sqlite,postgresql

The records are bulk-loaded as :mod:`benchmarks.search` loads them (this phase measures reading).
Each page is requested from the UI's application in-process (FastAPI's ``TestClient``: routing,
the store's reads, rendering; no network), 3 warm-ups then ``--repeat`` timed requests; the median
and p95 are reported in milliseconds, with the ratio to the same data read through the
:class:`pipeledger.Client` alone:

* ``runs page``: ``/ui/runs`` (50 runs, their steps' counts and metrics), against one
  ``Client.search_runs`` page of 50 runs;
* ``step page``: ``/ui/steps/ID`` of a step in the middle of the store, against
  ``Client.get_step_run`` with its inputs, outputs and metadata;
* ``run page``: ``/ui/runs/NAME`` (its DAG drawn by Graphviz and its timeline), against
  ``Client.get_run`` with its steps.

Budgets (issue #21): the first runs page within 300 ms and a step page within 100 ms of server time
at 100,000 runs. A budget missed is reported (and the exit status is 1), not asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.search import load, opened

HERE = Path(__file__).resolve().parent
WARMUP = 3
BUDGETS_MS = {"runs page": 300.0, "step page": 100.0}


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """Median and p95 of ``call``'s wall time in milliseconds."""
    for _ in range(WARMUP):
        call()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.95))]


def measure(store: Any, runs: int, repeat: int) -> list[dict[str, Any]]:
    """The three pages and their references, on ``store`` holding ``runs`` runs."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from pipeledger import Client
    from pipeledger.ui import mount_ui

    app = FastAPI()
    app.state.store = store
    mount_ui(app)
    http = TestClient(app)
    client = Client(store=store)
    middle = f"bench-{runs // 2}"
    step_id = client.get_run(middle).steps["step_5"].id

    def get(path: str) -> Callable[[], None]:
        def call() -> None:
            answer = http.get(path)
            assert answer.status_code == 200, (path, answer.status_code, answer.text[:500])

        return call

    def step_reference() -> None:
        step = client.get_step_run(step_id)
        _ = (dict(step.inputs), dict(step.outputs), step.metadata, step.run.name)

    def run_reference() -> None:
        run = client.get_run(middle)
        _ = [s.status for s in run.steps.values()]

    cases = [
        ("runs page", get("/ui/runs"), lambda: client.search_runs(limit=50).items),
        ("step page", get(f"/ui/steps/{step_id}"), step_reference),
        ("run page", get(f"/ui/runs/{middle}"), run_reference),
    ]
    rows = []
    for name, page, reference in cases:
        median, p95 = timed(page, repeat)
        base, _ = timed(reference, repeat)
        budget = BUDGETS_MS.get(name)
        rows.append(
            {
                "phase": "ui",
                "page": name,
                "runs": runs,
                "median_ms": round(median, 2),
                "p95_ms": round(p95, 2),
                "client_ms": round(base, 2),
                "ratio": round(median / base, 2) if base else None,
                "budget_ms": budget,
                "within_budget": None if budget is None else median <= budget,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="100000")
    parser.add_argument("--backends", default="sqlite")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "ui.jsonl")
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    missed = False
    for backend in args.backends.split(","):
        for runs in (int(r) for r in args.runs.split(",")):
            with opened(backend, runs) as store:
                started = time.perf_counter()
                load(store, runs)
                print(f"{backend}: loaded {runs:,} runs in {time.perf_counter() - started:.0f} s", flush=True)
                rows = measure(store, runs, args.repeat)
            with args.output.open("a") as sink:
                for row in rows:
                    row["backend"] = backend
                    sink.write(json.dumps(row) + "\n")
                    budget = f" (budget {row['budget_ms']:.0f} ms)" if row["budget_ms"] else ""
                    verdict = {True: " ok", False: " MISSED", None: ""}[row["within_budget"]]
                    missed = missed or row["within_budget"] is False
                    print(
                        f"  {row['page']:<10} median {row['median_ms']:7.1f} ms, p95 {row['p95_ms']:7.1f} ms{budget}"
                        f"{verdict}; Client alone {row['client_ms']:6.1f} ms, ratio {row['ratio']}",
                        flush=True,
                    )
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
