"""Lineage in one recursive SQL statement, the same on SQLite, MySQL/MariaDB and PostgreSQL.

From a starting artifact (or the inputs/outputs of a starting step run) a
recursive CTE walks the graph of artifacts through step runs:

* **upstream**: an artifact -> the step run that produced it (``artifacts.producer_step_run_id``,
  so an artifact reused by a cached step is followed to its true producer) -> that
  step run's input artifacts -> ...
* **downstream**: an artifact -> the step runs that consumed it -> their outputs -> ...

Each artifact row carries the number of steps walked to reach it; with a depth
limit ``d``, steps at most ``d`` away are included (and their inputs/outputs). The
final SELECT of the same statement returns the edges of the included step runs,
each joined with its artifact, step run, run and pipeline, so the whole graph comes
back in one round trip.

The starting id and the depth are bind parameters (``b_start``, ``b_depth``), so there
are only a dozen shapes of the statement; the store builds each once
(building one took longer than running it: ~1.9 of ~3 ms per call on SQLite).
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import CTE, Integer, Select, String, and_, bindparam, cast, false, literal, or_, select, true, union_all

from pipeledger.metadata_store.sql.schema import artifacts, pipeline_runs, pipelines, step_io, step_runs
from pipeledger.models import Direction

LineageDirection = Literal["upstream", "downstream", "both"]
LineageStart = Literal["artifact", "step_run"]
# Each artifact's true producer (step, output name, run), to name artifacts whatever the walk.
_PRODUCER = step_runs.alias("producer")
_PRODUCER_IO = step_io.alias("producer_io")
_PRODUCER_RUN = pipeline_runs.alias("producer_run")
_INPUT = Direction.INPUT.value
_OUTPUT = Direction.OUTPUT.value


_START = bindparam("b_start", type_=String(32))
_DEPTH = bindparam("b_depth", type_=Integer)


def _seed(start: LineageStart, direction: str) -> Select:
    zero = cast(literal(0), Integer).label("depth")
    if start == "artifact":
        return select(cast(_START, String(32)).label("artifact_id"), zero)
    return select(step_io.c.artifact_id.label("artifact_id"), zero).where(
        step_io.c.step_run_id == _START, step_io.c.direction == direction
    )


def _upstream(seed: Select, bounded: bool) -> CTE:
    closure = seed.cte("lineage_up", recursive=True)
    step = select(step_io.c.artifact_id, (closure.c.depth + 1) if bounded else closure.c.depth)
    step = step.select_from(
        closure.join(artifacts, artifacts.c.id == closure.c.artifact_id).join(
            step_io,
            and_(step_io.c.step_run_id == artifacts.c.producer_step_run_id, step_io.c.direction == _INPUT),
        )
    )
    if bounded:
        step = step.where(closure.c.depth < _DEPTH)
    return closure.union(step)


def _downstream(seed: Select, bounded: bool) -> CTE:
    closure = seed.cte("lineage_down", recursive=True)
    consumed = step_io.alias("consumed")
    produced = step_io.alias("produced")
    step = select(produced.c.artifact_id, (closure.c.depth + 1) if bounded else closure.c.depth)
    step = step.select_from(
        closure.join(
            consumed, and_(consumed.c.artifact_id == closure.c.artifact_id, consumed.c.direction == _INPUT)
        ).join(produced, and_(produced.c.step_run_id == consumed.c.step_run_id, produced.c.direction == _OUTPUT))
    )
    if bounded:
        step = step.where(closure.c.depth < _DEPTH)
    return closure.union(step)


def lineage_statement(start: LineageStart, direction: LineageDirection, bounded: bool) -> Select:
    """The one statement returning every edge of the lineage graph with its artifact and step run.

    Args:
        start: whether ``b_start`` is an artifact id or a step run id.
        direction: which way to walk.
        bounded: whether the walk stops at ``b_depth`` steps (else ``b_depth`` is not used).
    """
    within = (lambda cte: cte.c.depth < _DEPTH) if bounded else (lambda cte: true())
    # The step runs whose edges belong to the graph, tagged with why; the final SELECT starts from
    # them (a handful of rows) and reaches their edges by primary key, on every dialect.
    branches: list[Select] = []
    filters = []
    if direction in ("upstream", "both"):
        up = _upstream(_seed(start, _INPUT), bounded)
        branches.append(
            select(artifacts.c.producer_step_run_id.label("step_run_id"), literal("up").label("branch")).where(
                artifacts.c.id.in_(select(up.c.artifact_id).where(within(up))),
                artifacts.c.producer_step_run_id.is_not(None),
            )
        )
        filters.append(("up", or_(step_io.c.direction == _INPUT, step_io.c.artifact_id.in_(select(up.c.artifact_id)))))
        if start == "step_run":
            branches.append(select(_START.label("step_run_id"), literal("start_up").label("branch")))
            filters.append(("start_up", step_io.c.direction == _INPUT))
    if direction in ("downstream", "both"):
        down = _downstream(_seed(start, _OUTPUT), bounded)
        branches.append(
            select(step_io.c.step_run_id.label("step_run_id"), literal("down").label("branch")).where(
                step_io.c.direction == _INPUT,
                step_io.c.artifact_id.in_(select(down.c.artifact_id).where(within(down))),
            )
        )
        filters.append(
            ("down", or_(step_io.c.direction == _OUTPUT, step_io.c.artifact_id.in_(select(down.c.artifact_id))))
        )
        if start == "step_run":
            branches.append(select(_START.label("step_run_id"), literal("start_down").label("branch")))
            filters.append(("start_down", step_io.c.direction == _OUTPUT))
    relevant = union_all(*branches).cte("lineage_steps") if len(branches) > 1 else branches[0].cte("lineage_steps")
    conditions = [and_(relevant.c.branch == name, condition) for name, condition in filters]
    return (
        select(
            step_io.c.step_run_id,
            step_io.c.direction,
            step_io.c.name.label("io_name"),
            *(c.label(f"a_{c.name}") for c in artifacts.c),
            step_runs.c.name.label("s_name"),
            step_runs.c.status.label("s_status"),
            step_runs.c.run_id.label("s_run_id"),
            step_runs.c.start_time.label("s_start_time"),
            step_runs.c.end_time.label("s_end_time"),
            step_runs.c.cached_from_id.label("s_cached_from_id"),
            pipeline_runs.c.name.label("r_name"),
            pipelines.c.name.label("p_name"),
            _PRODUCER.c.name.label("ap_step"),
            _PRODUCER_IO.c.name.label("ap_output"),
            _PRODUCER_RUN.c.name.label("ap_run"),
        )
        .select_from(
            relevant.join(step_io, step_io.c.step_run_id == relevant.c.step_run_id)
            .join(artifacts, artifacts.c.id == step_io.c.artifact_id)
            .join(step_runs, step_runs.c.id == step_io.c.step_run_id)
            .join(pipeline_runs, pipeline_runs.c.id == step_runs.c.run_id)
            .join(pipelines, pipelines.c.id == pipeline_runs.c.pipeline_id)
            .outerjoin(_PRODUCER, _PRODUCER.c.id == artifacts.c.producer_step_run_id)
            .outerjoin(
                _PRODUCER_IO,
                and_(
                    _PRODUCER_IO.c.step_run_id == artifacts.c.producer_step_run_id,
                    _PRODUCER_IO.c.artifact_id == artifacts.c.id,
                    _PRODUCER_IO.c.direction == _OUTPUT,
                ),
            )
            .outerjoin(_PRODUCER_RUN, _PRODUCER_RUN.c.id == _PRODUCER.c.run_id)
        )
        .where(or_(*conditions) if conditions else false())
    )
