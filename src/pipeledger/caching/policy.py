"""Whether a step may reuse a cached result: run options, pipeline and step settings."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CachePolicy:
    """The caching settings of one run.

    Precedence: a run-level ``with_options(enable_cache=...)`` decides for every
    step; otherwise caching is on unless the pipeline or the step turns it off.
    ``refresh`` forces recomputation (of every step, or of the named ones); the
    fresh results become the new cache entries.
    """

    run_level: bool | None = None
    pipeline_level: bool | None = None
    refresh_all: bool = False
    refresh_steps: frozenset[str] = field(default_factory=frozenset)

    def decide(self, step_name: str, step_level: bool | None) -> tuple[bool, str | None]:
        """``(enabled, disabled_by)`` where disabled_by is ``run``, ``pipeline`` or ``step``."""
        if self.run_level is not None:
            return self.run_level, None if self.run_level else "run"
        if self.pipeline_level is False:
            return False, "pipeline"
        if step_level is False:
            return False, "step"
        return True, None

    def refresh(self, step_name: str) -> bool:
        """Whether ``step_name`` must be recomputed even on a cache hit."""
        return self.refresh_all or step_name in self.refresh_steps
