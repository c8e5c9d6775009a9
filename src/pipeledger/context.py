"""What a running step can know and record about itself."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

from pipeledger.exceptions import PipeledgerError
from pipeledger.models import JSON
from pipeledger.steps.signature import check_json

_context: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar("pipeledger_step_context", default=None)


@dataclass
class StepContext:
    """The pipeline, run and step being executed, and the metadata logged so far."""

    pipeline_name: str
    run_name: str
    step_name: str
    step_run_id: str
    metadata: dict[str, JSON] = field(default_factory=dict)


def get_step_context() -> StepContext:
    """The context of the step running in this thread.

    Raises:
        PipeledgerError: no step is running.
    """
    context = _context.get()
    if context is None:
        raise PipeledgerError(
            "no step is running: get_step_context() and log_metadata() work only inside a step while its pipeline runs"
        )
    return context


def log_metadata(**values: Any) -> None:
    """Attach key/value metadata (metrics, facts) to the running step's record.

    Values must be JSON (finite numbers, strings, lists, dicts...). They are
    recorded when the step finishes and read back as ``step.metadata[key]``;
    logging a key twice keeps the last value. Example::

        @step
        def evaluate(model: dict) -> None:
            log_metadata(accuracy=0.93, classes=["a", "b"])

    Raises:
        PipeledgerError: no step is running.
        DefinitionError: a value is not JSON.
    """
    context = get_step_context()
    for key, value in values.items():
        check_json(value, f"log_metadata: value of {key!r}")
    context.metadata.update(values)


def step_context(context: StepContext) -> contextvars.Token[StepContext | None]:
    """Make ``context`` current (for orchestrators); reset with :func:`reset_step_context`."""
    return _context.set(context)


def reset_step_context(token: contextvars.Token[StepContext | None]) -> None:
    """Undo :func:`step_context`."""
    _context.reset(token)
