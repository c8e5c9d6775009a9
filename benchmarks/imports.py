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


def wall(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, env=ENV)
    return time.perf_counter() - start


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
    times: dict[str, list[float]] = {label: [] for label in STATEMENTS}
    for _ in range(args.repeat):  # interleaved: the machine's load hits every statement alike
        for label, statement in STATEMENTS.items():
            times[label].append(wall(statement))
    bare = statistics.median(times["bare interpreter"])
    print(f"\n### Import cost (median of {args.repeat}, interleaved)\n")
    print("| statement | wall time (ms) | over a bare interpreter (ms) |")
    print("|---|---|---|")
    for label, values in times.items():
        median = statistics.median(values)
        print(f"| `{label}` | {median * 1000:.1f} | {(median - bare) * 1000:.1f} |")
    print("\nHeaviest modules under `import pipeledger` (cumulative µs, `-X importtime`):", end=" ")
    print(", ".join(f"{name} {us:,}" for name, us in heaviest("import pipeledger")))
    figures = {label: statistics.median(values) * 1000 for label, values in times.items()}
    print(json.dumps({"import_ms": figures}))


if __name__ == "__main__":
    main()
