"""Measure one system at one size in a fresh process (so peak memory is its own).

    python -m benchmarks.worker --system pipeledger --runs 1000 --dir /tmp/bench

prints one JSON object with every phase's figure.
"""

from __future__ import annotations

import argparse
import importlib
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.workload import STEPS, cache_key

MODULES = {
    "floor": "benchmarks.systems.floor",
    "pipeledger": "benchmarks.systems.pipeledger_store",
    "mlmd": "benchmarks.systems.mlmd",
}


def median_ms(call: Any, repeat: int = 20) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def measure(system_name: str, runs: int, directory: Path, backend: str, seed: int = 7) -> dict[str, Any]:
    if system_name == "floor" and backend != "sqlite":
        module = importlib.import_module("benchmarks.systems.server_floor")
    else:
        module = importlib.import_module(MODULES[system_name])
    system = (
        module.System(directory)
        if backend == "sqlite" and system_name != "pipeledger"
        else module.System(directory, backend)
    )
    rng = random.Random(seed)
    start = time.perf_counter()
    for run in range(1, runs + 1):
        system.record_run(run)
    record_s = time.perf_counter() - start
    names = system.list_runs()
    assert len(names) == runs, (system_name, len(names))
    list_ms = median_ms(system.list_runs)
    run_view_ms = median_ms(lambda: system.run_view(runs))
    lineage_runs = [rng.randint(1, runs) for _ in range(20)]
    sizes = []
    lineage_times = []
    for run in lineage_runs:
        t = time.perf_counter()
        sizes.append(system.lineage(run))
        lineage_times.append(time.perf_counter() - t)
    keys = [cache_key(rng.randint(1, runs), rng.randint(0, STEPS - 1)) for _ in range(1000)]
    cache_times = []
    for key in keys:
        t = time.perf_counter()
        found = system.cache_lookup(key)
        cache_times.append(time.perf_counter() - t)
        assert found, (system_name, key)
    files = system.files()
    system.close()
    size = sum(f.stat().st_size for f in files if f.exists())
    return {
        "system": system.name,
        "key": system_name if backend == "sqlite" and system_name != "pipeledger" else f"{system_name}-{backend}",
        "runs": runs,
        "steps": runs * STEPS,
        "record_s": record_s,
        "steps_per_s": runs * STEPS / record_s,
        "list_ms": list_ms,
        "run_view_ms": run_view_ms,
        "lineage_ms": statistics.median(lineage_times) * 1000,
        "lineage_nodes": statistics.median(sizes),
        "cache_us": statistics.median(cache_times) * 1e6,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "db_mib": size / 2**20,
        "python": sys.version.split()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", choices=sorted(MODULES), required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "mysql", "postgresql"])
    parser.add_argument("--dir", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ledger-bench-", dir=args.dir) as tmp:
        print(json.dumps(measure(args.system, args.runs, Path(tmp), args.backend)))


if __name__ == "__main__":
    main()
