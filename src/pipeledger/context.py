"""What a running step can know and record about itself."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any

from pipeledger.exceptions import PipeledgerError
from pipeledger.limits import check_json, check_name, check_record_size
from pipeledger.models import JSON

_context: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar("pipeledger_step_context", default=None)


@dataclass
class StepContext:
    """The pipeline, run and step being executed, and the metadata logged so far."""

    pipeline_name: str
    run_name: str
    step_name: str
    step_run_id: str
    metadata: dict[str, JSON] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict, repr=False)
    """The encoded size of each value of ``metadata`` (their sum is limited)."""


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

    Keys follow the rules of names, and values must be JSON (finite numbers, strings,
    lists, dicts...) of at most 1 MiB each and 4 MiB together (see
    :mod:`pipeledger.limits`): they are checked now, so a bad one fails the call, not the
    recording of the step. They are recorded when the step finishes and read back as
    ``step.metadata[key]``; logging a key twice keeps the last value. Example::

        @step
        def evaluate(model: dict) -> None:
            log_metadata(accuracy=0.93, classes=["a", "b"])

    Raises:
        PipeledgerError: no step is running.
        DefinitionError: a key is not a valid name, a value is not JSON, or a value or all of
            them together are too large (nothing of this call is kept).
    """
    context = get_step_context()
    sizes: dict[str, int] = {}
    for key, value in values.items():
        check_name("log_metadata: key", key)
        sizes[key] = check_json(value, f"log_metadata: value of {key!r}")
    total = sum(size for key, size in context.sizes.items() if key not in sizes) + sum(sizes.values())
    check_record_size(f"the metadata step {context.step_name!r} logs", total)
    context.metadata.update(values)
    context.sizes.update(sizes)


def step_context(context: StepContext) -> contextvars.Token[StepContext | None]:
    """Make ``context`` current (for orchestrators); reset with :func:`reset_step_context`."""
    return _context.set(context)


def reset_step_context(token: contextvars.Token[StepContext | None]) -> None:
    """Undo :func:`step_context`."""
    _context.reset(token)
