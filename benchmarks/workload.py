"""The ledger-bench workload: the same logical rows for every system.

Pipeline ``bench_pipeline``; S = 10 steps in a chain; ``step_0`` reads the shared
``raw_data`` artifact, ``step_i`` reads ``out_a`` of ``step_{i-1}``; every step writes
``out_a`` (Dataset) and ``out_b`` (Metrics) with URIs and two string properties, has
five parameters (2 strings, 2 ints, 1 float), a cache key unique per step per run and
the state COMPLETE. Runs are named ``run-<n>``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

PIPELINE = "bench_pipeline"
STEPS = 10
STORE_ROOT = "/bench/artifacts"
RAW_DATA_URI = f"{STORE_ROOT}/raw_data"


@dataclass(frozen=True)
class StepSpec:
    """One step of one run, as every system records it."""

    run: int
    index: int

    @property
    def run_name(self) -> str:
        return f"run-{self.run}"

    @property
    def name(self) -> str:
        return f"step_{self.index}"

    @property
    def parameters(self) -> dict[str, object]:
        return {
            "s1": f"alpha_{self.index}",
            "s2": "beta",
            "i1": self.index,
            "i2": self.run,
            "f1": 0.1 * self.index,
        }

    @property
    def cache_key(self) -> str:
        return cache_key(self.run, self.index)

    def output_uri(self, output: str) -> str:
        return f"{STORE_ROOT}/{self.run_name}/{self.name}/{output}/{uuid.uuid4().hex}"


OUTPUTS = (("out_a", "Dataset", "pandas.DataFrame"), ("out_b", "Metrics", "builtins.dict"))
MATERIALIZER = "bench.Materializer"


def cache_key(run: int, index: int) -> str:
    """The cache key of step ``index`` of run ``run`` (sha256 hex)."""
    return hashlib.sha256(f"bench-{run}-{index}".encode()).hexdigest()
