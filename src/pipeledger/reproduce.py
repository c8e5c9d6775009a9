"""Reproducing a recorded run: find its pipeline, report what changed, run it again."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import platform
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeledger.caching.sources import code_fingerprint
from pipeledger.environment import git_info
from pipeledger.exceptions import PipeledgerError

if TYPE_CHECKING:
    from pipeledger.client.views import RunView
    from pipeledger.pipelines.pipeline import Pipeline


def load_pipeline(run: RunView) -> Pipeline:
    """The pipeline object that made ``run``: imported by its recorded entrypoint, or loaded
    from its recorded source file (for pipelines defined in a script).

    Raises:
        PipeledgerError: neither the module nor the file can be loaded.
    """
    from pipeledger.pipelines.pipeline import Pipeline

    info = run.config.get("pipeline") or {}
    entrypoint = str(info.get("entrypoint") or "")
    module_name, _, qualname = entrypoint.rpartition(".")
    candidates: list[Any] = []
    if module_name and module_name != "__main__":
        with contextlib.suppress(ImportError):
            candidates.append(importlib.import_module(module_name))
    source = info.get("source_file")
    if not candidates and source and Path(source).exists():
        spec = importlib.util.spec_from_file_location(f"pipeledger_rerun_{run.pipeline_name}", source)
        if spec and spec.loader:
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            candidates.append(module)
    for module in candidates:
        obj: Any = module
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        if isinstance(obj, Pipeline):
            return obj
    raise PipeledgerError(
        f"cannot find pipeline {entrypoint!r} of run {run.name!r} (source file: {source or 'unknown'}); "
        "run from the project's directory or install its package"
    )


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
    for name, step in run.steps.items():
        invocation = invocations.get(name)
        if invocation is None:
            found.append(f"step `{name}` is no longer in the pipeline")
            continue
        old = dict(step.cache_components.get("code") or {})
        new = code_fingerprint(invocation.step.func)
        for qualified in sorted(set(old) | set(new)):
            if old.get(qualified) != new.get(qualified):
                what = "step" if qualified == step.entrypoint else "helper"
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


def rerun(run: RunView, *, report: Any = print) -> RunView:
    """Run ``run``'s pipeline again with its recorded parameters and options, after reporting
    (through ``report``) every difference in code and environment."""
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
