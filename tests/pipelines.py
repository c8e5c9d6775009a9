"""Steps and pipelines shared by the tests (defined in a module so their source is hashable)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from pipeledger import log_metadata, pipeline, step

log = logging.getLogger("tests.pipelines")


@step
def load(n_rows: int = 4) -> dict:
    """Load the training data."""
    print(f"loading {n_rows} rows")
    log.info("loaded via logging")
    return {"x": list(range(n_rows))}


@step
def train(data: dict, lr: float = 0.01) -> tuple[Annotated[dict, "model"], Annotated[float, "accuracy"]]:
    """Fit the model."""
    accuracy = 0.5 + lr
    log_metadata(accuracy=accuracy, rows=len(data["x"]))
    return {"w": lr, "n": len(data["x"])}, accuracy


@step
def evaluate(model: dict) -> None:
    log_metadata(evaluated=True)


@pipeline
def training(lr: float = 0.01, n_rows: int = 4):
    """Load, train, evaluate."""
    data = load(n_rows=n_rows)
    model, _accuracy = train(data, lr=lr)
    evaluate(model)


@pipeline
def forecasting(lr: float = 0.01, n_rows: int = 4):
    """The training steps in another pipeline (pipeline names are unique across projects: a
    second team's pipeline, tests/test_access_end_to_end.py)."""
    data = load(n_rows=n_rows)
    train(data, lr=lr)


@step
def explode(data: dict) -> int:
    print("about to fail")
    raise ValueError("boom")


@step
def after_failure(value: int) -> int:
    return value


@step
def independent() -> str:
    return "still ran"


@pipeline
def failing():
    data = load()
    after_failure(explode(data))
    independent()


#: Called by ``cut_off`` before it returns (a test sets it to stop the artifact store's endpoint).
STOP_ENDPOINT: Any = None


@step
def first() -> int:
    return 1


@step
def second(value: int) -> int:
    if STOP_ENDPOINT is not None:
        STOP_ENDPOINT()
    return value + 1


@pipeline
def lose_the_store():
    second(first())
