"""Parallel and distributed orchestration: speed-up and per-step overhead (issue #22).

1. Speed-up: a fan-out of 16 independent steps of 0.5 s of CPU work each (after one source
   step), cache off, on the sequential ``local`` orchestrator, ``local`` with
   ``max_parallelism=2`` (worker processes), and ``dask`` on a 2-worker ``LocalCluster``
   (started by the orchestrator for the run, and, separately, an already running one).
2. Per-step overhead: a chain of 20 no-op steps, and a source with 19 independent no-op
   steps, cache off, through ``local`` and through ``dask`` on a running 2-worker cluster:
   (run wall time - calling the functions directly) / 20. Each figure is the best of its
   repeats (the machine is shared: the other repeats measure the neighbours' load too).

Runs on a SQLite store in a temporary home. Prints a table and writes JSON lines to
``benchmarks/results/parallel-<timestamp>.jsonl``.

    python -m benchmarks.parallel [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pipeledger import pipeline, step

WIDTH = 16
CPU_SECONDS = 0.5
CHAIN = 20


@step
def begin(seed: int = 0) -> int:
    return seed


@step
def burn(x: int, index: int = 0) -> int:
    """0.5 s of CPU time of this thread."""
    start = time.thread_time()
    n = 0
    while time.thread_time() - start < CPU_SECONDS:
        for _ in range(10_000):
            n += 1
    return x + index


@step
def noop(x: int) -> int:
    return x


@pipeline
def fan_out(seed: int = 0):
    x = begin(seed=seed)
    for i in range(WIDTH):
        burn(x, index=i, id=f"burn_{i}")


@pipeline
def noop_fan(seed: int = 0):
    x = begin(seed=seed)
    for i in range(CHAIN - 1):
        noop(x, id=f"noop_{i}")


@pipeline
def chain(seed: int = 0):
    value = begin(seed=seed)
    for _ in range(CHAIN - 1):
        value = noop(value)


def use(label: str, flavor: str, values: dict[str, Any]) -> None:
    from pipeledger.stack.flavor import ComponentType
    from pipeledger.stack.manager import StackManager

    manager = StackManager()
    manager.register_component(ComponentType.ORCHESTRATOR, label, flavor, {k: str(v) for k, v in values.items()})
    manager.register_stack(label, label, "default", "default")
    activate(label)


def activate(stack: str) -> None:
    from pipeledger.stack.manager import StackManager
    from pipeledger.stack.registry import close_stacks

    StackManager().set_active_stack(stack)
    close_stacks()


def timed(p: Any, repeats: int, seed: int = 1000) -> list[float]:
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        p.with_options(enable_cache=False)(seed=seed + i)
        times.append(time.perf_counter() - started)
    return times


def direct_chain() -> float:
    started = time.perf_counter()
    value = begin.func(0)
    for _ in range(CHAIN - 1):
        value = noop.func(value)
    return time.perf_counter() - started


def _burn_seconds(seconds: float) -> None:
    start = time.thread_time()
    while time.thread_time() - start < seconds:
        pass


def control() -> float:
    """Raw multiprocessing, no pipeledger: wall time of two 1 s CPU burns in two processes at
    once, over one alone x 2. About 0.5 with two idle cores; 1.0 when only one core is free."""
    import multiprocessing

    started = time.perf_counter()
    _burn_seconds(1.0)
    one = time.perf_counter() - started
    with multiprocessing.get_context("fork").Pool(2) as pool:
        started = time.perf_counter()
        pool.map(_burn_seconds, [1.0, 1.0])
        two = time.perf_counter() - started
    return two / (2 * one)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import distributed

    os.environ["PIPELEDGER_QUIET"] = "1"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ledger-parallel-") as home:
        os.environ["PIPELEDGER_HOME"] = home
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster:
            configs = [
                ("local (sequential)", "local", {}),
                ("local max_parallelism=2", "local", {"max_parallelism": 2}),
                ("dask, LocalCluster per run (2 workers)", "dask", {"n_workers": 2, "threads_per_worker": 1}),
                ("dask, running cluster (2 workers)", "dask", {"address": cluster.scheduler_address}),
            ]
            for i, (label, flavor, values) in enumerate(configs):
                use(f"o{i}", flavor, values)
                chain.with_options(enable_cache=False)(seed=-1)  # warm-up: schema, imports, worker stores
                rows.append({"orchestrator": label, "fan_out_all": [], "loads": []})
            # Round-robin: each repeat runs every configuration once, so they share the machine's
            # load (other processes on it) alike; each figure is the best of its repeats.
            for repeat in range(args.repeats):
                for i, row in enumerate(rows):
                    activate(f"o{i}")
                    row["loads"].append(os.getloadavg()[0])
                    row["fan_out_all"] += timed(fan_out, 1, seed=1000 + repeat)
            direct = statistics.median(direct_chain() for _ in range(20))
            for i, row in enumerate(rows):
                row["fan_out_s"] = min(row["fan_out_all"])
                row["load"] = statistics.mean(row["loads"])
                if "LocalCluster per run" in row["orchestrator"]:
                    continue
                activate(f"o{i}")
                chains = timed(chain, max(args.repeats, 5))
                row["per_step_ms"] = (min(chains) - direct) / CHAIN * 1000
                fans = timed(noop_fan, max(args.repeats, 5))
                row["per_step_fan_ms"] = (min(fans) - direct) / CHAIN * 1000
    free = control()
    sequential = rows[0]["fan_out_s"]
    print(f"fan-out of {WIDTH} steps x {CPU_SECONDS} s CPU; chain of {CHAIN} no-op steps; cpus={os.cpu_count()}")
    print("best of the repeats (run round-robin); load: mean 1-minute load average before its fan-out runs")
    print(f"control, raw multiprocessing (2 x 1 s CPU at once / sequential): {free:.2f}x (0.5 = two free cores)")
    print("| orchestrator | fan-out wall (s) | vs sequential | no-op step overhead, chain (ms) | fan-out (ms) | load |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        row["ratio"] = row["fan_out_s"] / sequential
        chain_ms = f"{row['per_step_ms']:.1f}" if "per_step_ms" in row else "-"
        fan_ms = f"{row['per_step_fan_ms']:.1f}" if "per_step_fan_ms" in row else "-"
        print(
            f"| {row['orchestrator']} | {row['fan_out_s']:.2f} | {row['ratio']:.2f}x | {chain_ms} | {fan_ms} "
            f"| {row['load']:.1f} |"
        )
    out = Path(__file__).resolve().parent / "results"
    out.mkdir(exist_ok=True)
    with (out / f"parallel-{time.strftime('%Y%m%dT%H%M%S')}.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps({**row, "control_ratio": free}) + "\n")


if __name__ == "__main__":
    main()
