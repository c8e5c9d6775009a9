"""Tracing a pipeline body into a graph of step invocations.

While a ``@pipeline`` function runs under a :class:`Tracer`, each step call is
checked and recorded as a :class:`StepInvocation`, and returns
:class:`OutputRef` placeholders for its outputs, which later calls pass on.
Because a step can only consume outputs of steps called before it, the order
of invocations is already a topological order of the graph.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipeledger.exceptions import DefinitionError
from pipeledger.models import JSON
from pipeledger.steps.signature import check_json, check_name
from pipeledger.text import plural

if TYPE_CHECKING:
    from pipeledger.steps.step import Step

_tracer: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar("pipeledger_tracer", default=None)


@dataclass(frozen=True)
class OutputRef:
    """A placeholder for an output of a step invocation, passed to downstream steps.

    A pipeline body runs once, at definition time, to build the graph: no step has run
    yet, so an output has no value there. Using it as a value (truth, comparison,
    arithmetic, iteration, ``len``, indexing, attributes, formatting) raises
    :class:`~pipeledger.exceptions.DefinitionError` (``AttributeError`` for attributes)
    explaining this; the only thing a body can do with an output is pass it to a step.
    """

    step: str
    output: str

    def __repr__(self) -> str:
        return f"<output {self.step}.{self.output}>"

    def _misuse(self, what: str) -> DefinitionError:
        return DefinitionError(placeholder_message(self, what))

    def __bool__(self) -> bool:
        raise self._misuse("branch on (test the truth of)")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OutputRef):
            return (self.step, self.output) == (other.step, other.output)
        raise self._misuse("compare (==)")

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((self.step, self.output))

    def __lt__(self, other: object) -> bool:
        raise self._misuse("compare (<)")

    def __le__(self, other: object) -> bool:
        raise self._misuse("compare (<=)")

    def __gt__(self, other: object) -> bool:
        raise self._misuse("compare (>)")

    def __ge__(self, other: object) -> bool:
        raise self._misuse("compare (>=)")

    def __iter__(self) -> Iterator[Any]:
        raise self._misuse("iterate over (or unpack)")

    def __len__(self) -> int:
        raise self._misuse("take the len() of")

    def __contains__(self, item: object) -> bool:
        raise self._misuse("test membership (in) of")

    def __getitem__(self, key: object) -> Any:
        raise self._misuse(f"index ([{key!r}])")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # protocols probed by copy, pickle, numpy...: absent
            raise AttributeError(name)
        raise AttributeError(placeholder_message(self, f"read the attribute .{name} of"))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._misuse("call")

    def __format__(self, spec: str) -> str:
        if not spec:
            return repr(self)
        raise self._misuse(f"format ({spec!r})")

    def _arithmetic(self, *_: Any) -> Any:
        raise self._misuse("compute with (arithmetic on)")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _arithmetic
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _arithmetic
    __pow__ = __rpow__ = __matmul__ = __rmatmul__ = __neg__ = __pos__ = __abs__ = _arithmetic
    __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = __invert__ = _arithmetic
    __int__ = __float__ = __complex__ = __index__ = __round__ = _arithmetic


def placeholder_message(ref: OutputRef, what: str) -> str:
    """Why a pipeline body cannot ``what`` the output ``ref``, and what to do instead."""
    return (
        f"the output {ref.step}.{ref.output} is a placeholder in the pipeline body, not a value: the body "
        f"runs at definition time, before any step has run, so it cannot {what} it. Pass it to a step "
        "and use the value there (a step can compute a decision and return it as an output); to choose "
        "which steps run from a result, read it after the run (run.steps[...].output.read()) and call "
        "the pipeline you need"
    )


@dataclass
class StepInvocation:
    """One call of a step in a pipeline: its name there, inputs and parameters."""

    name: str
    step: Step
    inputs: dict[str, OutputRef]
    parameters: dict[str, JSON]

    @property
    def upstream(self) -> list[str]:
        """Names of the invocations whose outputs this one consumes (no duplicates)."""
        return list(dict.fromkeys(ref.step for ref in self.inputs.values()))

    def describe(self) -> dict[str, JSON]:
        """The invocation as recorded in the run's configuration."""
        return {
            "entrypoint": self.step.entrypoint,
            "upstream": self.upstream,
            "inputs": {k: f"{v.step}.{v.output}" for k, v in self.inputs.items()},
            "parameters": self.parameters,
            "outputs": list(self.step.signature.output_names),
            **self.step.options(),
        }


@dataclass
class Tracer:
    """Collects step invocations while a pipeline body runs."""

    pipeline_name: str
    invocations: dict[str, StepInvocation] = field(default_factory=dict)

    def add_step(self, step: Step, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Check a step call, record it, and return its output reference(s)."""
        name = kwargs.pop("id", None)
        if name is not None:
            check_name(f"step {step.name!r}: id", name)
        if name is None:
            name = step.name
            suffix = 2
            while name in self.invocations:
                name = f"{step.name}_{suffix}"
                suffix += 1
            if suffix > 2:  # a generated id must fit the store's names like a given one
                check_name(f"step {step.name[:40]!r} called again: its generated id (give the call id=...)", name)
        elif name in self.invocations:
            raise DefinitionError(
                f"pipeline {self.pipeline_name!r}: a step with id {name!r} is already in the "
                "pipeline; give this call another id"
            )
        inputs, parameters = self._bind(step, name, args, kwargs)
        self.invocations[name] = StepInvocation(name, step, inputs, parameters)
        refs = tuple(OutputRef(name, out) for out in step.signature.output_names)
        if step.signature.multiple_outputs:
            return refs
        return refs[0] if refs else None

    def _bind(
        self, step: Step, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[dict[str, OutputRef], dict[str, JSON]]:
        sig = step.signature
        where = f"step {name!r}"
        order = [*sig.inputs, *sig.parameters]
        if len(args) > len(order):
            raise DefinitionError(
                f"{where}: takes {plural(len(order), 'argument')} ({', '.join(order) or 'none'}) "
                f"but {len(args)} {'was' if len(args) == 1 else 'were'} given"
            )
        bound: dict[str, Any] = dict(zip(order, args))
        for key, value in kwargs.items():
            if key not in order:
                raise DefinitionError(
                    f"{where}: unknown parameter {key!r}; inputs: "
                    f"{', '.join(sig.inputs) or 'none'}; parameters: "
                    f"{', '.join(sig.parameters) or 'none'}"
                )
            if key in bound:
                raise DefinitionError(f"{where}: argument {key!r} given twice")
            bound[key] = value
        inputs: dict[str, OutputRef] = {}
        for input_name in sig.inputs:
            if input_name not in bound:
                raise DefinitionError(
                    f"{where}: input {input_name!r} is missing; pass it the output of an upstream step"
                )
            value = bound[input_name]
            if isinstance(value, tuple) and value and all(isinstance(v, OutputRef) for v in value):
                raise DefinitionError(
                    f"{where}: input {input_name!r} got all {plural(len(value), 'output')} of step "
                    f"{value[0].step!r}; unpack them and pass one"
                )
            if not isinstance(value, OutputRef):
                raise DefinitionError(
                    f"{where}: input {input_name!r} expects an artifact (the output of an upstream "
                    f"step) but got a raw {type(value).__name__}; pass a step's output, or give "
                    f"{input_name!r} a default to make it a parameter"
                )
            if value.step not in self.invocations:
                raise DefinitionError(
                    f"{where}: input {input_name!r} refers to step {value.step!r}, which is not part of this pipeline"
                )
            inputs[input_name] = value
        parameters: dict[str, JSON] = {}
        for param, default in sig.parameters.items():
            value = bound.get(param, default)
            if isinstance(value, OutputRef):
                raise DefinitionError(
                    f"{where}: parameter {param!r} got an artifact ({value!r}); parameters are "
                    f"JSON values. Remove the default of {param!r} to make it an input"
                )
            check_json(value, f"{where}: parameter {param!r}")
            parameters[param] = value
        return inputs, parameters


def current_tracer() -> Tracer | None:
    """The tracer of the pipeline body being traced in this context, if any."""
    return _tracer.get()


@contextmanager
def tracing(pipeline_name: str) -> Iterator[Tracer]:
    """Trace step calls made inside the ``with`` block."""
    tracer = Tracer(pipeline_name)
    token = _tracer.set(tracer)
    try:
        yield tracer
    finally:
        _tracer.reset(token)
