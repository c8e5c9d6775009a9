"""The ``@step`` decorator and the :class:`Step` it makes."""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import sys
import textwrap
from collections.abc import Callable
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
    ) -> None:
        if not callable(func) or not inspect.isfunction(func):
            raise DefinitionError(f"@step must decorate a function, got {func!r}")
        self.func = func
        self.name = name or func.__name__
        check_name("step name", self.name)
        self.enable_cache = enable_cache
        self.cache_version = cache_version
        self.cache_expires_after = cache_expires_after
        self.signature: StepSignature = read_signature(func, self.name)
        functools.update_wrapper(self, func)

    @property
    def entrypoint(self) -> str:
        """The function's import path, ``module.qualname``, with the module named by
        :func:`~pipeledger.caching.sources.module_name` (a script by its file, not ``__main__``)."""
        from pipeledger.caching.sources import module_name

        return f"{module_name(self.func.__module__)}.{self.func.__qualname__}"

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
        can send by value: steps defined in a script's ``__main__`` or inside functions)."""
        module = sys.modules.get(self.func.__module__)
        if module is not None and self.func.__module__ != "__main__":
            found: Any = module
            for part in self.func.__qualname__.split("."):
                found = getattr(found, part, None)
            if found is self:
                return (_import_step, (self.func.__module__, self.func.__qualname__))
        return super().__reduce_ex__(protocol)


@overload
def step(func: Callable[..., Any], /) -> Step: ...


@overload
def step(
    *,
    name: str | None = None,
    enable_cache: bool | None = None,
    cache_version: str | None = None,
    cache_expires_after: timedelta | None = None,
) -> Callable[[Callable[..., Any]], Step]: ...


def step(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    enable_cache: bool | None = None,
    cache_version: str | None = None,
    cache_expires_after: timedelta | None = None,
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
    """

    def wrap(f: Callable[..., Any]) -> Step:
        return Step(
            f,
            name=name,
            enable_cache=enable_cache,
            cache_version=cache_version,
            cache_expires_after=cache_expires_after,
        )

    return wrap(func) if func is not None else wrap


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
