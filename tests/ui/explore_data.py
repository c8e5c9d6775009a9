"""The runs the artifact, compare and metrics pages' browser tests read, on top of
:func:`tests.ui.recorded.record_all`: a ``seed`` run whose one artifact is read by
:data:`SWEEP_RUNS` runs of a ``sweep`` pipeline (recorded through the store contract, so it takes
a second), making a lineage of hundreds of nodes one step around that artifact.

``python -m tests.ui.explore_data`` records them on the active stack.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Annotated

from pipeledger import Client, pipeline, step
from pipeledger.models import Status, utcnow
from pipeledger.testing.helpers import artifact, finish, make_run, make_step
from tests.ui.recorded import HOSTILE_OUTPUT, HOSTILE_RUN, HOSTILE_STEP, record_all

#: Runs of the ``sweep`` pipeline reading the seed's artifact.
SWEEP_RUNS = 100


@step
def make_data(rows: int = 5) -> Annotated[dict, "table"]:
    """The data every sweep run reads."""
    return {"x": list(range(rows))}


@pipeline
def seed(rows: int = 5):
    make_data(rows=rows)


def png(width: int = 48, height: int = 32) -> bytes:
    """A PNG picture: a blue-to-orange gradient (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(
        b"\0" + b"".join(bytes((30 + 200 * x // width, 90, 200 - 150 * x // width)) for x in range(width))
        for _ in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@step
def draw(width: int = 48) -> Annotated[bytes, "picture"]:
    """A chart, as PNG bytes."""
    return png(width)


@pipeline
def plotting(width: int = 48):
    draw(width=width)


def record_sweep() -> None:
    """The seed run, then :data:`SWEEP_RUNS` sweep runs whose ``fit`` step reads its artifact and
    writes ``model`` and ``score``."""
    run = seed()
    data = run.steps["make_data"].outputs["table"]
    store = Client().store
    for _ in range(SWEEP_RUNS):
        run_record = make_run(store, "sweep")
        fit = make_step(store, run_record, "fit", inputs={"data": data.id})
        outputs = [artifact(o, uri=f"file:///sweep/{run_record.name}/fit/{o}") for o in ("model", "score")]
        finish(store, fit, outputs, end_time=utcnow())
        store.finish_run(run_record.id, Status.COMPLETED, end_time=utcnow())


def ids() -> dict[str, str]:
    """The ids the tests look for, by ``RUN/STEP/OUTPUT`` (artifacts) or ``RUN/STEP`` (step runs)."""
    client = Client()
    found = {}
    for run, step_name, output in [
        ("training-1", "load", "output"),
        ("training-2", "train", "model"),
        ("seed-1", "make_data", "table"),
        ("plotting-1", "draw", "picture"),
        (HOSTILE_RUN, HOSTILE_STEP, HOSTILE_OUTPUT),
    ]:
        view = client.get_run(run).steps[step_name]
        found[f"{run}/{step_name}"] = view.id
        found[f"{run}/{step_name}/{output}"] = view.outputs[output].id
    found["training-1/train"] = client.get_run("training-1").steps["train"].id
    return found


if __name__ == "__main__":
    record_all()
    record_sweep()
    plotting()
    print(json.dumps(ids()))
