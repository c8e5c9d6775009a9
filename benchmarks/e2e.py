"""End-to-end overhead: a 10-step pipeline of no-op steps through the public API, versus calling
the same ten functions directly, and against a floor of what recording a step needs at the least.

    python -m benchmarks.e2e [--runs 30]

Reports the median per-step overhead, caching off and on (all hits), and the floor: per step,
one value pickled to its own file and one SQLite transaction (WAL, ``synchronous=NORMAL``, a
row inserted in a file database), the least a step whose output is stored and recorded durably
costs. Pipeline runs, direct calls and floor runs are interleaved, so all are measured under the
same load, and the ratios (overhead / floor) are taken in this one run.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from pipeledger import pipeline, step

STEPS = 10


@step
def noop(x: int) -> int:
    return x


@step
def start(seed: int = 0) -> int:
    return seed


@pipeline
def ten_steps(seed: int = 0):
    value = start(seed=seed)
    for _ in range(STEPS - 1):
        value = noop(value)


def direct(seed: int) -> int:
    value = start.func(seed)
    for _ in range(STEPS - 1):
        value = noop.func(value)
    return value


class Floor:
    """Ten steps recorded with the least work: a pickled file and one SQLite transaction each."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.conn = sqlite3.connect(directory / "floor.db", isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("CREATE TABLE steps (id INTEGER PRIMARY KEY, run INTEGER, name TEXT, uri TEXT)")
        self.runs = 0

    def run(self, seed: int) -> None:
        self.runs += 1
        value = seed
        for index in range(STEPS):
            path = self.directory / f"{self.runs}-{index}.pkl"
            with open(path, "wb") as f:
                pickle.dump(value, f)
            self.conn.execute("BEGIN")
            self.conn.execute(
                "INSERT INTO steps (run, name, uri) VALUES (?, ?, ?)", (self.runs, f"step_{index}", str(path))
            )
            self.conn.execute("COMMIT")


def _timed(call: object, *args: object) -> tuple[float, float]:
    """Wall time and this process's CPU time of ``call(*args)`` (seconds). On a shared machine the
    CPU time leaves out the time spent waiting for a core; both are reported."""
    wall, cpu = time.perf_counter(), time.process_time()
    call(*args)  # type: ignore[operator]
    return time.perf_counter() - wall, time.process_time() - cpu


def _overhead(timings: list[tuple[float, float]], direct: list[tuple[float, float]], clock: int) -> float:
    """Per-step overhead in ms on clock 0 (wall) or 1 (CPU): medians of pipeline runs minus direct calls."""
    return (statistics.median(t[clock] for t in timings) - statistics.median(t[clock] for t in direct)) / STEPS * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    os.environ["PIPELEDGER_QUIET"] = "1"
    with tempfile.TemporaryDirectory(prefix="ledger-e2e-") as home:
        os.environ["PIPELEDGER_HOME"] = home
        floor_dir = Path(home) / "floor"
        floor_dir.mkdir()
        floor = Floor(floor_dir)
        ten_steps.with_options(enable_cache=False)(seed=-1)  # warm-up: schema, imports
        ten_steps(seed=0)  # the run the cache hits reuse
        floor.run(-1)
        results: dict[str, dict[str, float]] = {}
        floor_times: list[tuple[float, float]] = []
        for label, options in (("cache off", {"enable_cache": False}), ("cache on (all hits)", {})):
            timings: list[tuple[float, float]] = []
            direct_times: list[tuple[float, float]] = []
            for i in range(args.runs):  # interleaved: each round times all three
                seed = i + 1 if label == "cache off" else 0
                timings.append(_timed(ten_steps.with_options(**options), seed))
                direct_times.append(_timed(direct, i))
                floor_times.append(_timed(floor.run, i))
            results[label] = {
                "median_run_ms": statistics.median(t[0] for t in timings) * 1000,
                "per_step_overhead_ms": _overhead(timings, direct_times, 0),
                "per_step_overhead_cpu_ms": _overhead(timings, direct_times, 1),
            }
        floor_step = statistics.median(t[0] for t in floor_times) / STEPS * 1000
        floor_cpu = statistics.median(t[1] for t in floor_times) / STEPS * 1000
        for figures in results.values():
            figures["floor_per_step_ms"] = floor_step
            figures["floor_per_step_cpu_ms"] = floor_cpu
            figures["overhead_over_floor"] = figures["per_step_overhead_ms"] / floor_step
            figures["overhead_over_floor_cpu"] = figures["per_step_overhead_cpu_ms"] / floor_cpu
        print(json.dumps(results, indent=2))
        print(f"\n### End-to-end no-op step ({args.runs} runs of {STEPS} steps each, interleaved)\n")
        print("| | median run (ms) | per-step overhead, wall / CPU (ms) | floor per step, wall / CPU (ms) ", end="")
        print("| overhead / floor, wall / CPU | target (wall) |")
        print("|---|---|---|---|---|---|")
        for label, target in (("cache off", 1.5), ("cache on (all hits)", 1.0)):
            f = results[label]
            met = f["per_step_overhead_ms"] <= target and f["overhead_over_floor"] <= 8
            print(
                f"| {label} | {f['median_run_ms']:.1f} | {f['per_step_overhead_ms']:.2f} / "
                f"{f['per_step_overhead_cpu_ms']:.2f} | {f['floor_per_step_ms']:.3f} / "
                f"{f['floor_per_step_cpu_ms']:.3f} "
                f"| {f['overhead_over_floor']:.1f}× / {f['overhead_over_floor_cpu']:.1f}× "
                f"| ≤ {target} ms and ≤ 8×: {'met' if met else 'MISSED'} |"
            )


if __name__ == "__main__":
    main()
