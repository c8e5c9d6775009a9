"""End-to-end overhead: a 10-step pipeline of no-op steps through the public API, versus calling
the same ten functions directly. Reports the median per-step overhead, caching off and on.

    python -m benchmarks.e2e [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from pipeledger import pipeline, step


@step
def noop(x: int) -> int:
    return x


@step
def start(seed: int = 0) -> int:
    return seed


@pipeline
def ten_steps(seed: int = 0):
    value = start(seed=seed)
    for _ in range(9):
        value = noop(value)


def direct(seed: int) -> int:
    value = start.func(seed)
    for _ in range(9):
        value = noop.func(value)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    os.environ["PIPELEDGER_QUIET"] = "1"
    with tempfile.TemporaryDirectory(prefix="ledger-e2e-") as home:
        os.environ["PIPELEDGER_HOME"] = home
        ten_steps.with_options(enable_cache=False)(seed=-1)  # warm-up: schema, imports
        results = {}
        for label, options in (("cache off", {"enable_cache": False}), ("cache on (all hits)", {})):
            timings = []
            for i in range(args.runs):
                seed = i if label == "cache off" else 0
                begin = time.perf_counter()
                ten_steps.with_options(**options)(seed=seed)
                timings.append(time.perf_counter() - begin)
            direct_times = []
            for i in range(args.runs):
                begin = time.perf_counter()
                direct(i)
                direct_times.append(time.perf_counter() - begin)
            per_step = (statistics.median(timings) - statistics.median(direct_times)) / 10 * 1000
            results[label] = {"median_run_ms": statistics.median(timings) * 1000, "per_step_overhead_ms": per_step}
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
