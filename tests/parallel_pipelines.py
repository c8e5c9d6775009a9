"""Pipelines for the parallel and distributed orchestrator tests: a diamond, a wide fan-out,
a failing branch, and steps that sleep or record their process (defined in a module so worker
processes can import them)."""

from __future__ import annotations

import logging
import os
import time
from typing import Annotated

from pipeledger import log_metadata, pipeline, step

log = logging.getLogger("tests.parallel_pipelines")


@step
def source(n: int = 3) -> list:
    """The numbers 0..n-1."""
    print(f"source of {n}")
    return list(range(n))


@step
def scale(values: list, factor: int = 2) -> list:
    print(f"scaling by {factor}")
    log.info("scaled %d values", len(values))
    return [v * factor for v in values]


@step
def combine(left: list, right: list) -> Annotated[dict, "combined"]:
    return {"sum": sum(left) + sum(right), "n": len(left) + len(right)}


@step
def explode(values: list) -> list:
    raise ValueError("this branch fails")


@step
def nap(values: list, seconds: float = 0.5, index: int = 0) -> Annotated[dict, "napped"]:
    """Sleep, then record the process and the time the step ran."""
    start = time.time()
    time.sleep(seconds)
    print(f"nap {index} in process {os.getpid()}")
    log_metadata(pid=os.getpid(), started=start, ended=time.time())
    return {"index": index, "total": sum(values)}


@step
def gather(a: dict, b: dict) -> int:
    return int(a["total"]) + int(b["total"])


@pipeline
def diamond(n: int = 3):
    """source -> two scalings -> combine."""
    values = source(n=n)
    left = scale(values, factor=2, id="left")
    right = scale(values, factor=3, id="right")
    combine(left, right)


@pipeline
def fan_out(width: int = 20):
    """One source, ``width`` independent scalings."""
    values = source(n=4)
    for i in range(width):
        scale(values, factor=i, id=f"scale_{i}")


@pipeline
def failing_branch():
    """A diamond whose right branch fails: combine is skipped, the left branch completes."""
    values = source(n=3)
    left = scale(values, factor=2, id="left")
    right = explode(values)
    combine(left, right)
    scale(left, factor=5, id="after_left")


@pipeline
def naps(width: int = 4, seconds: float = 0.5):
    """``width`` independent naps after a source, then a gather of the first two."""
    values = source(n=2)
    outs = [nap(values, seconds=seconds, index=i, id=f"nap_{i}") for i in range(width)]
    gather(outs[0], outs[1])


@step
def explode_later(values: list, seconds: float = 0.5) -> list:
    time.sleep(seconds)
    raise ValueError("this branch fails late")


@pipeline
def failing_branch_with_naps():
    """A step that fails after 1 s while a 30 s step runs."""
    values = source(n=2)
    nap(values, seconds=30, id="slow")
    explode_later(values, seconds=1.0, id="explode")


@step
def kill_worker_once(values: list, marker: str = "") -> int:
    """Kill the process running it (SIGKILL) the first time, complete the next."""
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        print("killing my worker")
        os.kill(os.getpid(), 9)
    return sum(values)


@step
def kill_worker_always(values: list) -> int:
    os.kill(os.getpid(), 9)
    return 0


@pipeline
def killed_once(marker: str = ""):
    kill_worker_once(source(n=3), marker=marker)


@pipeline
def killed_always():
    kill_worker_always(source(n=3))


@step(resources={"GPU": 1})
def needs_gpu(values: list) -> int:
    return len(values)


@pipeline
def gpu_pipeline():
    needs_gpu(source(n=2))


@pipeline
def killed_among_others():
    """A step that kills its worker process, beside independent steps."""
    values = source(n=3)
    kill_worker_always(values)
    for i in range(4):
        nap(values, seconds=0.2, index=i, id=f"nap_{i}")


def _square(x: int) -> int:
    return x * x


@step
def uses_processes(values: list) -> list:
    """Starts processes of its own (multiprocessing), as data-loading code often does."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        return pool.map(_square, values)


@pipeline
def child_processes():
    uses_processes(source(n=4))
