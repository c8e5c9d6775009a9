"""Reading a step function's signature: its inputs, parameters and outputs.

Rules (documented in docs/writing-pipelines.md):

* an argument **without** a default is an **input**: an artifact from an upstream step;
* an argument **with** a default is a **parameter**: a JSON value, recorded with the run;
* the return annotation declares the outputs: none (``-> None``), one named
  ``output`` (any other annotation, or none), one named (``Annotated[T, "name"]``)
  or several named (``tuple[Annotated[A, "a"], Annotated[B, "b"]]``).
"""

from __future__ import annotations

import inspect
import json
import numbers
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pipeledger.exceptions import DefinitionError
from pipeledger.limits import MAX_JSON_DEPTH as MAX_JSON_DEPTH  # re-exported: the limits live in limits.py
from pipeledger.limits import MAX_NAME_LENGTH as MAX_NAME_LENGTH
from pipeledger.limits import check_json as check_json
from pipeledger.limits import check_name as check_name

DEFAULT_OUTPUT = "output"
RESERVED_ARGUMENTS = ("id",)


@dataclass(frozen=True)
class OutputSpec:
    """One declared output: its name and annotated type (``Any`` when unannotated)."""

    name: str
    annotation: Any


@dataclass(frozen=True)
class StepSignature:
    """The inputs, parameters (with defaults) and outputs of a step function."""

    inputs: tuple[str, ...]
    parameters: dict[str, Any]
    outputs: tuple[OutputSpec, ...]
    multiple_outputs: bool

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)


RUN_NUMBER_DIGITS = 10
"""Characters a run name keeps free for its ``{n}`` (run numbers up to 9,999,999,999)."""
MAX_PIPELINE_NAME_LENGTH = MAX_NAME_LENGTH - len("-") - RUN_NUMBER_DIGITS
"""244: a pipeline's default run names ``{pipeline}-{n}`` must fit in :data:`MAX_NAME_LENGTH`."""


def canonical_json(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces (used in hashes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def read_signature(func: Callable[..., Any], step_name: str) -> StepSignature:
    """Inspect ``func`` and return its step signature.

    Raises:
        DefinitionError: ``*args``/``**kwargs``, a reserved argument name, a
            non-JSON default, an unnamed or duplicate output.
    """
    signature = inspect.signature(func)
    hints = _type_hints(func)
    inputs: list[str] = []
    parameters: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        where = f"step {step_name!r}: argument {name!r}"
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise DefinitionError(f"{where}: *args and **kwargs are not supported; declare each input and parameter")
        if param.kind is param.POSITIONAL_ONLY:
            raise DefinitionError(f"{where}: positional-only arguments are not supported")
        if name in RESERVED_ARGUMENTS:
            raise DefinitionError(f"{where}: the name {name!r} is reserved; rename it")
        check_name(f"step {step_name!r}: argument name", name)  # recorded as an input or parameter name
        if param.default is param.empty:
            inputs.append(name)
        else:
            check_json(param.default, f"{where} (a parameter, because it has a default)")
            parameters[name] = param.default
    returned = hints.get("return", signature.return_annotation)
    if isinstance(returned, str):
        returned = _resolve_string_annotation(func, returned, step_name)
    outputs, multiple = _outputs(returned, step_name)
    return StepSignature(tuple(inputs), parameters, outputs, multiple)


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:
        pass
    # One unresolvable annotation (e.g. a name imported only under TYPE_CHECKING) must not
    # lose the others, above all the return annotation that declares the outputs.
    globalns = getattr(inspect.unwrap(func), "__globals__", {})
    hints: dict[str, Any] = {}
    for name, annotation in dict(getattr(func, "__annotations__", {})).items():
        holder = types.SimpleNamespace(__annotations__={name: annotation})
        try:
            hints.update(typing.get_type_hints(holder, globalns=globalns, include_extras=True))
        except Exception:
            hints[name] = annotation
    return hints


def _resolve_string_annotation(func: Callable[..., Any], text: str, step_name: str) -> Any:
    """Evaluate a postponed return annotation that ``get_type_hints`` could not resolve."""
    namespace = {"Annotated": Annotated, "typing": typing, **getattr(func, "__globals__", {})}
    try:
        return eval(text, namespace)
    except Exception as exc:
        if "Annotated" in text:
            raise DefinitionError(
                f"step {step_name!r}: cannot resolve its return annotation {text!r} ({exc}); "
                "import the names it uses at module level"
            ) from None
        return text


def _annotated_name(annotation: Any) -> str | None:
    if get_origin(annotation) is Annotated:
        for meta in get_args(annotation)[1:]:
            if isinstance(meta, str):
                return meta
    return None


def _outputs(annotation: Any, step_name: str) -> tuple[tuple[OutputSpec, ...], bool]:
    if annotation is inspect.Signature.empty:
        return (OutputSpec(DEFAULT_OUTPUT, Any),), False
    if annotation is None or annotation is type(None):
        return (), False
    single = _annotated_name(annotation)
    if single is not None:
        check_name(f"step {step_name!r}: output name", single)
        return (OutputSpec(single, get_args(annotation)[0]),), False
    if get_origin(annotation) is tuple:
        members = get_args(annotation)
        names = [_annotated_name(m) for m in members]
        if members and any(n is not None for n in names):
            specs: list[OutputSpec] = []
            for index, (member, name) in enumerate(zip(members, names)):
                if name is None:
                    raise DefinitionError(
                        f"step {step_name!r}: output {index + 1} of the returned tuple has no "
                        'name; annotate every member as Annotated[T, "name"]'
                    )
                check_name(f"step {step_name!r}: output name", name)
                if name in (s.name for s in specs):
                    raise DefinitionError(f"step {step_name!r}: output name {name!r} is declared twice")
                specs.append(OutputSpec(name, get_args(member)[0]))
            return tuple(specs), True
    return (OutputSpec(DEFAULT_OUTPUT, annotation),), False


# PEP 484's numeric tower: an int is a float where a float is declared, and NumPy's scalars
# (registered with the ``numbers`` ABCs) are ints and floats.
_NUMERIC = {int: numbers.Integral, float: numbers.Real, complex: numbers.Complex}


def expected_classes(annotation: Any) -> tuple[type, ...] | None:
    """The classes a value declared ``annotation`` must be an instance of, or None: no check.

    A class is itself (``int``, ``float`` and ``complex`` as in the numeric tower); a generic
    is its origin (``list[int]`` → ``list``: the items are not checked); ``Annotated[T, ...]``
    is ``T``; ``Optional``/``Union``/``A | B`` any member; ``None`` is ``NoneType``. Not
    checked: ``Any``, ``object``, type variables, ``Literal``, ``NewType``'s and unresolved
    (string) annotations, and classes ``isinstance`` refuses (``TypedDict``, protocols that
    are not ``runtime_checkable``).
    """
    if annotation is None or annotation is type(None):
        return (type(None),)
    origin = get_origin(annotation)
    if origin is Annotated:
        return expected_classes(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        members = [expected_classes(member) for member in get_args(annotation)]
        if any(m is None for m in members):
            return None
        return tuple(cls for m in members if m is not None for cls in m)
    target = origin if origin is not None else annotation
    if not isinstance(target, type) or target is object:
        return None
    try:
        isinstance(None, target)
    except TypeError:
        return None
    return (_NUMERIC.get(target, target),)


def check_output(step_name: str, spec: OutputSpec, value: Any) -> None:
    """Raise :class:`DefinitionError` naming the step and the output unless ``value`` is of the
    type the step declared for it (see :func:`expected_classes` for what is checked)."""
    expected = expected_classes(spec.annotation)
    if expected is None or isinstance(value, expected):
        return
    declared = _type_name(spec.annotation)
    got = type(value)
    raise DefinitionError(
        f"step {step_name!r}: output {spec.name!r} is declared {declared} but the step returned a "
        f"{got.__module__}.{got.__qualname__}; return a {declared} or change the annotation "
        "(nothing was stored)"
    )


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and get_origin(annotation) is None:
        return (
            annotation.__qualname__
            if annotation.__module__ == "builtins"
            else (f"{annotation.__module__}.{annotation.__qualname__}")
        )
    return str(annotation).replace("typing.", "")
