"""Import cost: the wall time of ``python -c "import pipeledger"`` (and of the imports a pipeline
file makes), against an interpreter that imports nothing, measured interleaved in this one run.

    python -m benchmarks.imports [--repeat 15]

Prints the median wall time of each statement, its cost over the bare interpreter, and the
modules that cost most (``python -X importtime``, cumulative microseconds) for ``import pipeledger``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

STATEMENTS = {
    "bare interpreter": "pass",
    "import pipeledger": "import pipeledger",
    "from pipeledger import step, pipeline": "from pipeledger import step, pipeline",
    "from pipeledger import Client": "from pipeledger import Client",
}


#: As a user's installation: bytecode written once and reused (the warm-up writes it).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def wall(statement: str) -> tuple[float, float]:
    """The wall time and the CPU time (user + system) of a fresh interpreter running ``statement``;
    on a shared machine the CPU time leaves out the time spent waiting for a core."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, env=ENV)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heaviest(statement: str, count: int = 12) -> list[tuple[str, int]]:
    """The ``count`` modules with the largest cumulative import time under ``statement``."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, env=ENV
    ).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        rows.append((name, int(cumulative)))
    return sorted(rows, key=lambda r: -r[1])[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    for statement in STATEMENTS.values():  # warm the file cache and write bytecode
        wall(statement)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in STATEMENTS}
    for _ in range(args.repeat):  # interleaved: the machine's load hits every statement alike
        for label, statement in STATEMENTS.items():
            times[label].append(wall(statement))
    medians = {
        label: (statistics.median(v[0] for v in values) * 1000, statistics.median(v[1] for v in values) * 1000)
        for label, values in times.items()
    }
    bare = medians["bare interpreter"]
    print(f"\n### Import cost (median of {args.repeat}, interleaved)\n")
    print("| statement | wall time (ms) | CPU time (ms) | over a bare interpreter, wall / CPU (ms) |")
    print("|---|---|---|---|")
    for label, (wall_ms, cpu_ms) in medians.items():
        print(f"| `{label}` | {wall_ms:.1f} | {cpu_ms:.1f} | {wall_ms - bare[0]:.1f} / {cpu_ms - bare[1]:.1f} |")
    print("\nHeaviest modules under `import pipeledger` (cumulative µs, `-X importtime`):", end=" ")
    print(", ".join(f"{name} {us:,}" for name, us in heaviest("import pipeledger")))
    print(json.dumps({"import_ms": {label: {"wall": w, "cpu": c} for label, (w, c) in medians.items()}}))


if __name__ == "__main__":
    main()
