"""Running a pipeline: trace it, gather the facts a run records, hand it to the orchestrator."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from pipeledger.artifacts.materializers import default_registry
from pipeledger.environment import environment, modules_used_by, start_git_info
from pipeledger.exceptions import DefinitionError
from pipeledger.models import JSON
from pipeledger.orchestrators.base import RunPlan
from pipeledger.orchestrators.progress import choose_reporter, is_quiet
from pipeledger.pipelines.pipeline import Pipeline, new_run_create
from pipeledger.redact import redact_json
from pipeledger.stack.registry import get_stack

if TYPE_CHECKING:
    from pipeledger.client.views import RunView


def run_pipeline(p: Pipeline, parameters: dict[str, JSON]) -> RunView:
    """Run ``p`` with ``parameters`` on its stack and return the recorded run.

    Raises:
        DefinitionError: the pipeline body calls steps wrongly (nothing recorded).
        RunFailedError: a step failed; the run is recorded ``failed``.
    """
    from pipeledger.client.client import Client

    invocations = p.trace(parameters)
    refresh = p.options.refresh_cache
    if isinstance(refresh, tuple):
        unknown = sorted(set(refresh) - {i.name for i in invocations})
        if unknown:
            raise DefinitionError(
                f"pipeline {p.name!r}: refresh_cache names unknown step {unknown[0]!r}; steps: "
                + ", ".join(i.name for i in invocations)
            )
    source = p.source_path()
    pending = start_git_info(source) if source else None  # git runs while the rest is gathered
    try:
        stack = get_stack(p.options.stack)
        modules: set[str] = set()
        for inv in invocations:
            modules |= modules_used_by(inv.step.func)
        code_hash = hashlib.sha256(
            "".join(sorted([p.source_hash(), *(i.step.source_hash for i in invocations)])).encode()
        ).hexdigest()
        env = environment(modules)
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise
    git = pending.result() if pending is not None else None
    if git is not None and git.sha is not None:
        env["git"] = {"diff_hash": git.diff_hash, "remote": git.remote, "root": git.root}
    create = new_run_create(
        p,
        parameters,
        invocations,
        environment=redact_json(env),  # no credential in a recorded URL (git remote, ...)
        stack=redact_json(stack.snapshot()),
        git_sha=git.sha if git else None,
        git_dirty=git.dirty if git else None,
        code_hash=code_hash,
        project=stack.metadata_store.project,
    )
    quiet = is_quiet(p.options.quiet)
    plan = RunPlan(
        create=create,
        invocations=invocations,
        metadata_store=stack.metadata_store,
        artifact_store=stack.artifact_store,
        materializers=default_registry(),
        reporter=choose_reporter(quiet),
        echo_output=not quiet,
        cache=p.cache_policy(),
        stores=stack.recipes,
    )
    result = stack.orchestrator.run(plan)
    if result.failure is not None:
        raise result.failure
    return Client(stack=stack).get_run(result.run.id)
