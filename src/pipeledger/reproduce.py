"""Reproducing a recorded run: find its pipeline, report what changed, run it again."""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import cloudpickle

from pipeledger.caching.sources import RECORDED_NAME_ATTRIBUTE, code_fingerprint, file_module_name, module_name
from pipeledger.environment import git_info
from pipeledger.exceptions import PipeledgerError
from pipeledger.pipelines.pipeline import loading_without_runs

if TYPE_CHECKING:
    from pipeledger.client.views import RunView
    from pipeledger.pipelines.pipeline import Pipeline


def load_pipeline(run: RunView) -> Pipeline:
    """The pipeline object that made ``run``, found without running any pipeline.

    Where it looks, in order: a module already loaded from the run's recorded source file
    (in the process that made the run, e.g. a script calling ``pipeledger.rerun(run)``, that is
    the script itself: nothing is loaded again), or, if that file is gone, the loaded module
    of the recorded name; the module named by the recorded
    entrypoint, imported, if it is that file (or if the file is gone, e.g. an installed
    package); else the recorded file, loaded under a private name with its directory on
    ``sys.path`` (as ``python file.py`` would have it), so that a script's
    ``if __name__ == "__main__":`` block does not run. Fingerprints name that module as
    recorded (see :func:`~pipeledger.caching.sources.module_name`).

    Raises:
        PipeledgerError: the pipeline cannot be found.
        DefinitionError: loading the module would run a pipeline (a script without a
            ``__main__`` guard); nothing is run.
    """
    info = run.config.get("pipeline") or {}
    entrypoint = str(info.get("entrypoint") or "")
    recorded_module, _, qualname = entrypoint.rpartition(".")
    source = info.get("source_file")
    path = Path(source).resolve() if source else None
    exists = path is not None and path.is_file()
    loaded = [m for m in [sys.modules.get(recorded_module)] if m is not None]
    for module in _modules_from(path) if exists else loaded:
        found = _find(module, qualname)
        if found is not None:
            return found
    by_name = _spec_of(recorded_module) if recorded_module and recorded_module != "__main__" else None
    with loading_without_runs(str(path) if exists else recorded_module):
        if by_name is not None and (not exists or _same_file(by_name.origin, path)):
            found = _find(importlib.import_module(recorded_module), qualname)
            if found is not None:
                return found
        if exists and path is not None:
            name = recorded_module if recorded_module and recorded_module != "__main__" else file_module_name(path)
            found = _find(_load_file(path, name), qualname)
            if found is not None:
                return found
    raise PipeledgerError(
        f"cannot find pipeline {entrypoint!r} of run {run.name!r} (source file: {source or 'unknown'}); "
        "run from the project's directory or install its package"
    )


def _find(module: ModuleType, qualname: str) -> Pipeline | None:
    from pipeledger.pipelines.pipeline import Pipeline

    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, Pipeline) else None


def _same_file(file: str | None, path: Path | None) -> bool:
    return bool(file) and path is not None and Path(str(file)).name == path.name and Path(str(file)).resolve() == path


def _modules_from(path: Path | None) -> list[ModuleType]:
    """Modules already loaded from ``path`` (``__main__`` first)."""
    found = [m for m in list(sys.modules.values()) if _same_file(getattr(m, "__file__", None), path)]
    return sorted(found, key=lambda m: m.__name__ != "__main__")


def _spec_of(name: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


def _load_file(path: Path, name: str) -> ModuleType:
    """Execute the file ``path`` as a new module with a private name (not ``__main__``), recorded
    as ``name`` in fingerprints; its directory goes first on ``sys.path``, as for a script."""
    private = f"pipeledger_rerun_{hashlib.sha256(str(path).encode()).hexdigest()[:16]}"
    spec = importlib.util.spec_from_file_location(private, path)
    if spec is None or spec.loader is None:
        raise PipeledgerError(f"cannot load {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    setattr(module, RECORDED_NAME_ATTRIBUTE, name)
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    sys.modules[private] = module
    # Values of the script's own classes are pickled by value, as they are from `__main__`:
    # no other process can import the private name.
    cloudpickle.register_pickle_by_value(module)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        cloudpickle.unregister_pickle_by_value(module)
        sys.modules.pop(private, None)
        raise
    return module


def _current_package(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def differences(run: RunView, pipeline: Pipeline) -> list[str]:
    """Each difference between what ``run`` recorded and the code and environment now."""
    found: list[str] = []
    source = pipeline.source_path()
    git = git_info(source) if source else None
    recorded_git = run.environment.get("git") or {}
    if git is not None and git.sha != run.git_sha:
        found.append(f"git commit {str(run.git_sha)[:12]} → {str(git.sha)[:12]}")
    if git is not None and git.sha is not None:
        if bool(git.dirty) != bool(run.git_dirty):
            found.append(f"git tree {'dirty' if run.git_dirty else 'clean'} → {'dirty' if git.dirty else 'clean'}")
        elif git.dirty and git.diff_hash != recorded_git.get("diff_hash"):
            found.append("uncommitted changes differ from the recorded ones")
    invocations = {i.name: i for i in pipeline.trace(dict(run.parameters))}
    script = module_name(pipeline.func.__module__)
    for name, step in run.steps.items():
        invocation = invocations.get(name)
        if invocation is None:
            found.append(f"step `{name}` is no longer in the pipeline")
            continue
        # Runs recorded before scripts were named by their file named them `__main__`.
        old = {_unmain(k, script): v for k, v in (step.cache_components.get("code") or {}).items()}
        new = code_fingerprint(invocation.step.func)
        for qualified in sorted(set(old) | set(new)):
            if old.get(qualified) != new.get(qualified):
                what = "step" if qualified == _unmain(step.entrypoint or "", script) else "helper"
                found.append(f"source of {what} `{qualified.rpartition('.')[2]}` (step `{name}`) changed")
    for name in invocations:
        if name not in run.steps:
            found.append(f"step `{name}` is new in the pipeline")
    if run.environment.get("python") != platform.python_version():
        found.append(f"Python {run.environment.get('python')} → {platform.python_version()}")
    if run.environment.get("platform") != platform.platform():
        found.append(f"platform {run.environment.get('platform')} → {platform.platform()}")
    for package, version in sorted((run.environment.get("packages") or {}).items()):
        now = _current_package(package)
        if now != version:
            found.append(f"package {package} {version} → {now or 'not installed'}")
    return found


def _unmain(qualified: str, script: str) -> str:
    return script + qualified[len("__main__") :] if qualified.startswith("__main__.") else qualified


def rerun(run: RunView, *, report: Any = print) -> RunView:
    """Run ``run``'s pipeline again with its recorded parameters and options, after reporting
    (through ``report``) every difference in code and environment; returns the new run.

    Exported as ``pipeledger.rerun``: a rerun starts from the execution side, which reads the
    recorded run through the client (the client never imports execution code)::

        import pipeledger
        again = pipeledger.rerun(pipeledger.Client().get_run("training-3"))
    """
    pipeline = load_pipeline(run)
    changes = differences(run, pipeline)
    if changes:
        report(f"re-running {run.name} with these differences from the recorded run:")
        for change in changes:
            report(f"  - {change}")
    else:
        report(f"re-running {run.name}: code and environment are as recorded")
    options = run.config.get("options") or {}
    template = str(options.get("run_name") or "{pipeline}-{n}")
    if "{n}" not in template and "{time}" not in template:
        template = "{pipeline}-{n}"
    refresh = options.get("refresh_cache")
    configured = pipeline.with_options(
        run_name=template,
        enable_cache=options.get("enable_cache"),
        tags=[*run.tags, f"rerun-of:{run.name}"],
        refresh_cache=refresh if refresh else None,
    )
    return configured(**run.parameters)
