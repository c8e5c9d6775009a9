"""The ``@step`` decorator and the :class:`Step` it makes."""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import re
import sys
import textwrap
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, overload

from pipeledger.exceptions import DefinitionError
from pipeledger.steps.signature import StepSignature, check_name, read_signature


class Step:
    """A function that runs as one recorded step of a pipeline.

    Called inside a ``@pipeline`` body, a step does not run: it is added to the
    pipeline's graph and returns references to its future outputs. Called
    anywhere else, it simply runs the function.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        enable_cache: bool | None = None,
        cache_version: str | None = None,
        cache_expires_after: timedelta | None = None,
        resources: Mapping[str, float | str] | None = None,
    ) -> None:
        if not callable(func) or not inspect.isfunction(func):
            raise DefinitionError(f"@step must decorate a function, got {func!r}")
        self.func = func
        self.name = name or func.__name__
        check_name("step name", self.name)
        self.enable_cache = enable_cache
        self.cache_version = cache_version
        self.cache_expires_after = cache_expires_after
        self.resources: dict[str, float] = check_resources(self.name, resources or {})
        self.signature: StepSignature = read_signature(func, self.name)
        functools.update_wrapper(self, func)

    @property
    def entrypoint(self) -> str:
        """The function's import path, ``module.qualname``, with the module named by
        :func:`~pipeledger.caching.sources.module_name` (a script by its file, not ``__main__``)."""
        pinned = self.__dict__.get("_pinned_entrypoint")
        if pinned is not None:
            return str(pinned)
        from pipeledger.caching.sources import module_name

        return f"{module_name(self.func.__module__)}.{self.func.__qualname__}"

    def code_fingerprint(self) -> dict[str, str]:
        """The fingerprint of the step's code in cache keys
        (:func:`~pipeledger.caching.sources.code_fingerprint`). A step sent by value to another
        process carries the one computed where it was defined (see :meth:`__reduce_ex__`)."""
        pinned = self.__dict__.get("_pinned_fingerprint")
        if pinned is not None:
            return dict(pinned)
        from pipeledger.caching.sources import code_fingerprint

        return code_fingerprint(self.func)

    @functools.cached_property
    def source_file(self) -> str | None:
        """The absolute path of the file defining the function (symbolic links resolved), or None
        when it is not a file (a REPL, ``exec``). OpenLineage's ``sourceCodeLocation`` names it,
        relative to the repository's root."""
        try:
            found = inspect.getsourcefile(inspect.unwrap(self.func))
        except (OSError, TypeError):
            return None
        if not found:
            return None
        resolved = str(Path(found).resolve())
        return resolved if resolved.isascii() or _is_text(resolved) else None

    @property
    def docstring(self) -> str | None:
        """The function's docstring, cleaned."""
        return inspect.getdoc(self.func)

    @functools.cached_property
    def source_hash(self) -> str:
        """sha256 of the function's dedented source (its bytecode if the source is unavailable)."""
        try:
            source = textwrap.dedent(inspect.getsource(self.func))
        except (OSError, TypeError):
            source = repr(self.func.__code__.co_code)
        return hashlib.sha256(source.encode()).hexdigest()

    def options(self) -> dict[str, Any]:
        """The step's configuration as recorded with each of its runs."""
        return {
            "enable_cache": self.enable_cache,
            "cache_version": self.cache_version,
            "cache_expires_after": (self.cache_expires_after.total_seconds() if self.cache_expires_after else None),
            **({"resources": dict(self.resources)} if self.resources else {}),
        }

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from pipeledger.pipelines.tracing import current_tracer

        tracer = current_tracer()
        if tracer is None:
            return self.func(*args, **kwargs)
        return tracer.add_step(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<Step {self.name} ({self.entrypoint})>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled by reference (module and name) when the step is importable as such, so worker
        processes import it; otherwise as its attributes (which ``cloudpickle``, used by Dask,
        can send by value: steps defined in a script's ``__main__``, inside functions, or in a
        module made without an import spec). A step sent by value carries its entrypoint, source
        hash, source file and code fingerprint as computed here, where its module is loaded, so
        the worker records and caches it exactly as this process would."""
        module = sys.modules.get(self.func.__module__)
        if module is not None and self.func.__module__ != "__main__" and getattr(module, "__spec__", None):
            found: Any = module
            for part in self.func.__qualname__.split("."):
                found = getattr(found, part, None)
            if found is self:
                return (_import_step, (self.func.__module__, self.func.__qualname__))
        state = dict(self.__dict__)
        state["_pinned_entrypoint"] = self.entrypoint
        state["_pinned_fingerprint"] = self.code_fingerprint()
        state["source_hash"] = self.source_hash
        state["source_file"] = self.source_file
        return (_rebuild_step, (state,))


@overload
def step(func: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    enable_cache: bool | None = None,
    cache_version: str | None = None,
    cache_expires_after: timedelta | None = None,
    resources: Mapping[str, float | str] | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    enable_cache: bool | None = None,
    cache_version: str | None = None,
    cache_expires_after: timedelta | None = None,
    resources: Mapping[str, float | str] | None = None,
) -> Step | Callable[[Callable[..., Any]], Step]:
    """Make a function a pipeline step.

    Arguments without a default are inputs (artifacts from upstream steps),
    arguments with a default are parameters (JSON values); the return
    annotation names the outputs. Example::

        @step
        def train(data: dict, lr: float = 0.01) -> Annotated[dict, "model"]:
            return {"w": lr}

    Args:
        name: the step's name in pipelines (default: the function's name).
        enable_cache: reuse earlier results (None: follow the pipeline).
        cache_version: change it to invalidate cached results by hand.
        cache_expires_after: cached results older than this are recomputed.
        resources: what one run of the step needs from a worker, e.g. ``{"memory": "4GiB",
            "GPU": 1}``: amounts are positive numbers, or byte sizes (``"512MB"``, ``"4GiB"``,
            counted in bytes). The ``dask`` orchestrator runs the step only on workers started
            with enough of each (``dask worker --resources "GPU=1 memory=4e9"``); the ``local``
            orchestrator ignores them.
    """

    def wrap(f: Callable[..., Any]) -> Step:
        return Step(
            f,
            name=name,
            enable_cache=enable_cache,
            cache_version=cache_version,
            cache_expires_after=cache_expires_after,
            resources=resources,
        )

    return wrap(func) if func is not None else wrap


_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_AMOUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def check_resources(step: str, resources: Mapping[str, float | str]) -> dict[str, float]:
    """``resources`` with each amount as a number (byte sizes in bytes).

    Raises:
        DefinitionError: a name that is not a non-empty text, or an amount that is not a
            positive number or byte size.
    """
    found: dict[str, float] = {}
    if not isinstance(resources, Mapping):
        raise DefinitionError(f"step {step!r}: resources must be a dict such as {{'GPU': 1, 'memory': '4GiB'}}")
    for name, amount in resources.items():
        if not isinstance(name, str) or not name.strip():
            raise DefinitionError(f"step {step!r}: resource names are non-empty texts, got {name!r}")
        value: float | None = None
        if isinstance(amount, (int, float)) and not isinstance(amount, bool):
            value = float(amount)
        elif isinstance(amount, str):
            match = _AMOUNT.match(amount)
            unit = match.group(2).lower() if match else ""
            if match and (unit in _UNITS or unit == ""):
                value = float(match.group(1)) * _UNITS.get(unit, 1)
        if value is None or not value > 0 or value == float("inf"):
            raise DefinitionError(
                f"step {step!r}: resource {name!r} needs a positive amount (a number, or a size such as "
                f"'4GiB' or '512MB'), got {amount!r}"
            )
        found[name] = value
    return found


def _rebuild_step(state: dict[str, Any]) -> Step:
    """A step sent by value (unpickling, see :meth:`Step.__reduce_ex__`)."""
    rebuilt = Step.__new__(Step)
    rebuilt.__dict__.update(state)
    return rebuilt


def _import_step(module: str, qualname: str) -> Step:
    """The step ``module.qualname`` (unpickling a step pickled by reference)."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not isinstance(found, Step):
        raise DefinitionError(f"{module}.{qualname} is not a step here (it is {type(found).__name__})")
    return found


def _is_text(value: str) -> bool:
    """Whether ``value`` is valid Unicode text (a file name with undecodable bytes is not: it holds
    surrogates, which no store keeps)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
