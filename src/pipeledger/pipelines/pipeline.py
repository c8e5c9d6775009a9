"""The ``@pipeline`` decorator and the :class:`Pipeline` it makes."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import inspect
import string
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from pipeledger.caching.policy import CachePolicy
from pipeledger.caching.sources import module_name
from pipeledger.exceptions import DefinitionError
from pipeledger.limits import check_tag
from pipeledger.models import JSON, RunCreate, new_id, utcnow
from pipeledger.pipelines.tracing import StepInvocation, tracing
from pipeledger.steps.signature import MAX_PIPELINE_NAME_LENGTH, RUN_NUMBER_DIGITS, check_json, check_name
from pipeledger.text import plural

if TYPE_CHECKING:
    from pipeledger.client.views import RunView

DEFAULT_RUN_NAME = "{pipeline}-{n}"
_LOADING: ContextVar[str | None] = ContextVar("pipeledger_loading", default=None)
_RUN_NAME_FIELDS = {"pipeline", "n", "date", "time"}


@dataclass(frozen=True)
class RunOptions:
    """How a pipeline runs. ``None`` means "the default"."""

    run_name: str | None = None
    enable_cache: bool | None = None
    stack: str | None = None
    quiet: bool | None = None
    tags: tuple[str, ...] | None = None
    refresh_cache: bool | tuple[str, ...] | None = None


class Pipeline:
    """A function whose body wires steps; calling it runs them on the active stack.

    Parameters of the pipeline function are JSON values recorded with the run;
    the body calls steps, passing outputs of earlier steps as inputs.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str | None = None,
        enable_cache: bool | None = None,
        options: RunOptions | None = None,
    ) -> None:
        if not inspect.isfunction(func):
            raise DefinitionError(f"@pipeline must decorate a function, got {func!r}")
        self.func = func
        self.name = name or func.__name__
        check_pipeline_name(self.name)
        self.enable_cache = enable_cache
        self.options = options or RunOptions()
        self._signature = inspect.signature(func)
        for pname, param in self._signature.parameters.items():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise DefinitionError(
                    f"pipeline {self.name!r}: *args/**kwargs are not supported; declare each parameter"
                )
            if param.default is not param.empty:
                check_json(param.default, f"pipeline {self.name!r}: parameter {pname!r}")
        if self.options.run_name is not None:
            _check_run_name(self.options.run_name, self.name)
        functools.update_wrapper(self, func)

    @property
    def docstring(self) -> str | None:
        """The pipeline function's docstring, cleaned."""
        return inspect.getdoc(self.func)

    def with_options(
        self,
        *,
        run_name: str | None = None,
        enable_cache: bool | None = None,
        stack: str | None = None,
        quiet: bool | None = None,
        tags: list[str] | tuple[str, ...] | None = None,
        refresh_cache: bool | list[str] | tuple[str, ...] | None = None,
    ) -> Pipeline:
        """A copy of this pipeline with some run options changed.

        Args:
            run_name: name of the run; may use ``{pipeline}``, ``{n}`` (the run's
                number within the pipeline), ``{date}`` and ``{time}`` (UTC).
            enable_cache: reuse cached step results; decides for every step of the run,
                overriding the pipeline's and the steps' settings.
            stack: run on this stack instead of the active one.
            quiet: show no progress (default: ``$PIPELEDGER_QUIET``).
            tags: labels recorded with the run (``run.tags``).
            refresh_cache: recompute every step (``True``) or the named steps, even if a
                cached result exists; the fresh results become the new cache entries.
        """
        if tags is not None and not all(isinstance(t, str) and t for t in tags):
            raise DefinitionError(f"pipeline {self.name!r}: tags must be non-empty strings, got {tags!r}")
        for tag in tags or ():
            check_tag(tag, f"pipeline {self.name!r}: tag")
        changes: dict[str, Any] = {
            k: v
            for k, v in {
                "run_name": run_name,
                "enable_cache": enable_cache,
                "stack": stack,
                "quiet": quiet,
                "tags": tuple(tags) if tags is not None else None,
                "refresh_cache": (
                    refresh_cache if isinstance(refresh_cache, bool) or refresh_cache is None else tuple(refresh_cache)
                ),
            }.items()
            if v is not None
        }
        return Pipeline(
            self.func,
            name=self.name,
            enable_cache=self.enable_cache,
            options=dataclasses.replace(self.options, **changes),
        )

    def bind_parameters(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, JSON]:
        """The pipeline's parameters for a call: defaults overridden by ``args``/``kwargs``.

        Raises:
            DefinitionError: unknown or missing parameter, or a non-JSON value.
        """
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            known = ", ".join(self._signature.parameters) or "none"
            raise DefinitionError(f"pipeline {self.name!r}: {exc}; its parameters are: {known}") from None
        bound.apply_defaults()
        for pname, value in bound.arguments.items():
            check_json(value, f"pipeline {self.name!r}: parameter {pname!r}")
        return dict(bound.arguments)

    def cache_policy(self) -> CachePolicy:
        """The caching settings of a run of this pipeline with its current options."""
        refresh = self.options.refresh_cache
        return CachePolicy(
            run_level=self.options.enable_cache,
            pipeline_level=self.enable_cache,
            refresh_all=refresh is True,
            refresh_steps=frozenset(refresh) if isinstance(refresh, tuple) else frozenset(),
        )

    def trace(self, parameters: dict[str, JSON]) -> list[StepInvocation]:
        """Run the body under a tracer and return the step invocations in execution order."""
        with tracing(self.name) as tracer:
            self.func(**parameters)
        if not tracer.invocations:
            raise DefinitionError(f"pipeline {self.name!r} calls no step")
        return list(tracer.invocations.values())

    def __call__(self, *args: Any, **kwargs: Any) -> RunView:
        """Run the pipeline on the stack and return the recorded run.

        Raises:
            DefinitionError: the pipeline or a step call is wrong (nothing is recorded).
            RunFailedError: a step failed (the run is recorded ``failed``).
        """
        from pipeledger.pipelines.run import run_pipeline

        loading = _LOADING.get()
        if loading is not None:
            raise DefinitionError(
                f"{loading} runs pipeline {self.name!r} when it is loaded, so its pipelines cannot be "
                'loaded to rerun a run: put the script\'s pipeline calls under `if __name__ == "__main__":` '
                "(nothing was run)"
            )
        return run_pipeline(self, self.bind_parameters(args, kwargs))

    def __repr__(self) -> str:
        return f"<Pipeline {self.name}>"

    def source_hash(self) -> str:
        """sha256 of the pipeline function's source."""
        try:
            source = inspect.getsource(self.func)
        except (OSError, TypeError):
            source = repr(self.func.__code__.co_code)
        return hashlib.sha256(source.encode()).hexdigest()

    def source_path(self) -> Path | None:
        """The file defining the pipeline, if known."""
        try:
            return Path(inspect.getfile(self.func)).resolve()
        except (OSError, TypeError):
            return None


def check_pipeline_name(name: object) -> None:
    """Refuse a pipeline name :func:`~pipeledger.steps.signature.check_name` refuses, or one longer
    than :data:`~pipeledger.steps.signature.MAX_PIPELINE_NAME_LENGTH` (244) characters: its default
    run names ``{pipeline}-{n}`` (with 10 digits kept for ``{n}``) must fit in 255, on every backend.

    Raises:
        DefinitionError: naming the problem and the limit.
    """
    check_name("pipeline name", name)
    if isinstance(name, str) and len(name) > MAX_PIPELINE_NAME_LENGTH:
        raise DefinitionError(
            f"pipeline name {name[:40]!r}... is {plural(len(name), 'character')} long; the limit is "
            f"{MAX_PIPELINE_NAME_LENGTH}, so that its run names {DEFAULT_RUN_NAME!r} fit in 255 characters"
        )


@contextlib.contextmanager
def loading_without_runs(what: str) -> Iterator[None]:
    """While the block loads ``what`` (a module or file, to find a recorded pipeline), calling
    any pipeline raises :class:`DefinitionError` instead of running it: loading a script whose
    top level runs pipelines runs nothing."""
    token = _LOADING.set(what)
    try:
        yield
    finally:
        _LOADING.reset(token)


def _check_run_name(template: str, pipeline_name: str) -> None:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise DefinitionError(f"pipeline {pipeline_name!r}: run_name {template!r}: {exc}") from None
    check_name(f"pipeline {pipeline_name!r}: run_name", template.replace("{n}", "0" * RUN_NUMBER_DIGITS))
    unknown = fields - _RUN_NAME_FIELDS
    if unknown:
        raise DefinitionError(
            f"pipeline {pipeline_name!r}: run_name {template!r} uses unknown placeholder "
            f"{{{sorted(unknown)[0]}}}; available: {{pipeline}}, {{n}}, {{date}}, {{time}}"
        )


def render_run_name(template: str, pipeline_name: str, now: datetime | None = None) -> str:
    """Fill every placeholder of a run name but ``{n}``, which the store assigns.

    Raises:
        DefinitionError: a placeholder with a format spec or conversion (only plain
            ``{pipeline}``, ``{n}``, ``{date}``, ``{time}`` are allowed), or a rendered
            name that is not a valid name (e.g. longer than 255 characters with a
            10-digit run number).
    """
    now = now or utcnow()
    where = f"pipeline {pipeline_name!r}: run_name {template!r}"
    try:
        for _, field_name, spec, conversion in string.Formatter().parse(template):
            if field_name is not None and (spec or conversion):
                raise DefinitionError(f"{where}: placeholders take no format spec or conversion; use {{{field_name}}}")
        rendered = template.format(
            pipeline=pipeline_name,
            date=now.strftime("%Y-%m-%d"),
            time=now.strftime("%H-%M-%S"),
            n="{n}",
        )
    except (ValueError, KeyError, IndexError) as exc:
        raise DefinitionError(f"{where}: {exc}") from None
    check_name(f"{where}: the run name", rendered.replace("{n}", "0" * RUN_NUMBER_DIGITS))
    return rendered


@overload
def pipeline(func: Callable[..., Any], /) -> Pipeline: ...


@overload
def pipeline(
    *, name: str | None = None, enable_cache: bool | None = None, run_name: str | None = None
) -> Callable[[Callable[..., Any]], Pipeline]: ...


def pipeline(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    enable_cache: bool | None = None,
    run_name: str | None = None,
) -> Pipeline | Callable[[Callable[..., Any]], Pipeline]:
    """Make a function a pipeline. Its body calls steps; calling it runs them. Example::

        @pipeline
        def training(lr: float = 0.01):
            data = load()
            train(data, lr=lr)

        run = training(lr=0.1)

    Args:
        name: the pipeline's name (default: the function's name).
        enable_cache: default caching for its steps.
        run_name: template of run names (default ``"{pipeline}-{n}"``).
    """

    def wrap(f: Callable[..., Any]) -> Pipeline:
        return Pipeline(f, name=name, enable_cache=enable_cache, options=RunOptions(run_name=run_name))

    return wrap(func) if func is not None else wrap


def new_run_create(
    p: Pipeline,
    parameters: dict[str, JSON],
    invocations: list[StepInvocation],
    **facts: Any,
) -> RunCreate:
    """The run record to create for a call of ``p`` (see :func:`~pipeledger.pipelines.run.run_pipeline`)."""
    options = p.options
    config = {
        "pipeline": {
            "name": p.name,
            "entrypoint": f"{module_name(p.func.__module__)}.{p.func.__qualname__}",
            "source_hash": p.source_hash(),
            "source_file": str(p.source_path()) if p.source_path() else None,
        },
        "options": {
            "run_name": options.run_name or DEFAULT_RUN_NAME,
            "enable_cache": options.enable_cache,
            "pipeline_enable_cache": p.enable_cache,
            "refresh_cache": list(options.refresh_cache)
            if isinstance(options.refresh_cache, tuple)
            else options.refresh_cache,
            "stack": options.stack,
            "tags": list(options.tags or ()),
        },
        "steps": {inv.name: inv.describe() for inv in invocations},
    }
    return RunCreate(
        id=new_id(),
        pipeline_name=p.name,
        name=render_run_name(options.run_name or DEFAULT_RUN_NAME, p.name),
        parameters=parameters,
        config=config,
        pipeline_docstring=p.docstring,
        tags=list(options.tags or ()),
        **facts,
    )
