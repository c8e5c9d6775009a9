"""A search (:class:`pipeledger.search.SearchQuery`) compiled to one SQLAlchemy Core SELECT.

Every value of the filter is a bound parameter; field names map to columns chosen here, never
to text taken from the filter. Conditions are two-valued: a comparison with an absent value
(an unfinished run's ``ended``, a missing ``params.X``) is false, and ``not`` turns it true.

* attributes compare their column (text ordered by code point on every database: ``COLLATE
  "C"`` on PostgreSQL, byte comparison on MySQL, whose ``utf8mb4_bin`` pads trailing spaces);
* ``params.X`` reads the parameters document (:mod:`.search_json`);
* ``tag ...``, ``metrics.X ...`` and ``upstream_of``/``downstream_of`` are ``id IN (subquery)``
  (``NOT IN`` for the negative forms: ``tag != 'x'`` means "has no tag x"), index look-ups on
  ``tags``, ``metadata`` and a recursive CTE over ``step_io``;
* ``like`` is case-sensitive everywhere (``GLOB`` on SQLite), ``ilike`` folds ASCII letters
  (other letters as the database does).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from typing import Any, TypeGuard

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    extract,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.sql.expression import ColumnElement, FromClause, Select

from pipeledger.metadata_store.sql.common import artifacts_in_projects
from pipeledger.metadata_store.sql.schema import (
    artifacts,
    entity_metadata,
    entity_tags,
    pipeline_runs,
    pipelines,
    step_io,
    step_runs,
)
from pipeledger.metadata_store.sql.search_json import JsonReader, as_binary, as_double
from pipeledger.models import Direction, EntityKind, Status
from pipeledger.search import SearchQuery
from pipeledger.search.ast import And, Compare, Entity, Field, FieldKind, Lineage, Literal, Node, Not, Or, ValueType

_KIND = {Entity.RUN: EntityKind.RUN, Entity.STEP: EntityKind.STEP_RUN, Entity.ARTIFACT: EntityKind.ARTIFACT}
_MAX_WALK = 1000  # lineage steps walked when no depth is given (lineage is a DAG: a safety net)

_RUN_PIPELINE = select(pipelines.c.name).where(pipelines.c.id == pipeline_runs.c.pipeline_id).scalar_subquery()
_RUN_PROJECT = select(pipelines.c.project).where(pipelines.c.id == pipeline_runs.c.pipeline_id).scalar_subquery()
_PRODUCER = step_runs.alias("producer")
_PRODUCER_RUN = pipeline_runs.alias("producer_run")
_PRODUCER_PIPELINE = pipelines.alias("producer_pipeline")
_PAGE_TAG = entity_tags.alias("page_tag")  # the tags row a page is read from (:meth:`SearchCompiler.drive`)
_PAGE_METRIC = entity_metadata.alias("page_metric")  # the metadata row a page is read from
_PAGE_STEP = step_runs.alias("page_step")  # ... and its step run (run searches)


def _duration(dialect: str, start: Any, end: Any) -> ColumnElement[Any]:
    if dialect == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    if dialect == "postgresql":
        return as_double(extract("epoch", end - start))
    return as_double(func.timestampdiff(literal_unit("MICROSECOND"), start, end) / 1000000.0)


def literal_unit(unit: str) -> Any:
    """A SQL keyword argument (``MICROSECOND``) rendered as written: a constant of this module."""
    from sqlalchemy import literal_column

    return literal_column(unit)


class SearchCompiler:
    """Compiles one :class:`SearchQuery` for one dialect."""

    def __init__(self, query: SearchQuery, dialect: str) -> None:
        self.query = query
        self.dialect = dialect
        self.json = JsonReader(dialect)
        self.entity = query.entity
        self._names = itertools.count(1)
        if self.entity is Entity.RUN:
            # One table in FROM, the pipeline's name by primary key: the planner then walks an index
            # of pipeline_runs in the page's order (with a join, SQLite sorted every match).
            self.id = pipeline_runs.c.id
            self.from_: FromClause = pipeline_runs
            self.columns: list[Any] = [
                *pipeline_runs.c,
                _RUN_PIPELINE.label("pipeline_name"),
                _RUN_PROJECT.label("project"),
            ]
        elif self.entity is Entity.STEP:
            self.id = step_runs.c.id
            self.from_ = step_runs.join(pipeline_runs, step_runs.c.run_id == pipeline_runs.c.id).join(
                pipelines, pipeline_runs.c.pipeline_id == pipelines.c.id
            )
            self.columns = list(step_runs.c)
        else:
            self.id = artifacts.c.id
            self.from_ = (
                artifacts.outerjoin(_PRODUCER, artifacts.c.producer_step_run_id == _PRODUCER.c.id)
                .outerjoin(_PRODUCER_RUN, _PRODUCER.c.run_id == _PRODUCER_RUN.c.id)
                .outerjoin(_PRODUCER_PIPELINE, _PRODUCER_RUN.c.pipeline_id == _PRODUCER_PIPELINE.c.id)
            )
            self.columns = list(artifacts.c)

    # --------------------------------------------------------------- statement

    def statement(self) -> tuple[Select[Any], list[ColumnElement[Any]]]:
        """The page's SELECT (one row more than the limit) and its sort-key expressions, which
        the SELECT returns as columns ``k0``, ``k1``... after the record's own.

        Two shapes read the first page in index order instead of sorting every match (see
        :meth:`drive`): ``tag = X`` in the default order walks ``tags(entity_kind, tag,
        entity_time, entity_id)``; ``metrics.K > x`` ordered by ``metrics.K`` walks
        ``metadata(entity_kind, key, number)``. Either returns the same rows as the plain shape."""
        keys = [self.order_expression(k.field) for k in self.query.order]
        conditions: list[ColumnElement[bool]] = []
        items: list[Node] = []
        if self.query.filter is not None:
            items = list(self.query.filter.items) if isinstance(self.query.filter, And) else [self.query.filter]
        from_, id_, driven = self.drive(items, keys, conditions)
        conditions.extend(self.condition(item) for item in items)
        if self.query.projects is not None:
            conditions.append(self.in_projects(self.query.projects))
        if self.query.after is not None:
            conditions.append(self.after(keys, *self.query.after, id_=id_, not_null=driven))
        order: list[Any] = []
        for i, (key, expression) in enumerate(zip(self.query.order, keys)):
            sortable = self.sortable(expression, key.field)
            ordered = sortable.desc() if key.descending else sortable.asc()
            if not key.field.nullable or i in driven:
                order.append(ordered)
            elif self.dialect == "mysql":  # no NULLS LAST: sort by "is null" first
                order.extend([case((expression.is_(None), 1), else_=0), ordered])
            else:  # one evaluation of the key per row (a metric is a subquery)
                order.append(ordered.nulls_last())
        last_descending = self.query.order[-1].descending if self.query.order else False
        order.append(id_.desc() if last_descending else id_)
        labelled = [e.label(f"k{i}") for i, e in enumerate(keys)]
        statement = (
            select(*self.columns, *labelled)
            .select_from(from_)
            .where(*conditions)
            .order_by(*order)
            .limit(self.query.limit + 1)
        )
        return statement, keys

    def drive(
        self, items: list[Node], keys: list[ColumnElement[Any]], conditions: list[ColumnElement[bool]]
    ) -> tuple[FromClause, ColumnElement[Any], set[int]]:
        """The FROM clause, the id column and the order keys known not NULL, for the page's order
        read from an index: rewrites ``keys`` and moves the filter items it serves from ``items``
        to ``conditions`` (the filter is their conjunction, ``items``).

        * ``tag = X`` and the order is the entity's time alone (``started``/``created``, either
          way): the rows come from ``tags`` joined to the entity, ordered by ``tags.entity_time``
          (a copy of that time) and ``tags.entity_id`` (the entity's id): the index order.
        * the first order key is ``metrics.K`` (or ``metrics.STEP.K``) and a filter item is a
          numeric comparison of it (so every match has a value): the rows come from the metadata
          row holding the entity's value, ordered by its ``number``. A run's value is the largest
          any of its steps (or the named step) logged: a row is used only when no step of its run
          logged a larger one (or the same, on a smaller step id), so each run comes once.
        """
        order = self.query.order
        time_field = "created" if self.entity is Entity.ARTIFACT else "started"
        if len(order) == 1 and order[0].field.kind is FieldKind.ATTRIBUTE and order[0].field.name == time_field:
            for item in items:
                if _on(item, FieldKind.TAG) and item.op == "=" and isinstance(item.value, Literal):
                    items.remove(item)
                    t = _PAGE_TAG.c
                    conditions.append(t.entity_kind == _KIND[self.entity].value)
                    conditions.append(self.compare(t.tag, ValueType.TEXT, "=", item.value, False))
                    keys[0] = t.entity_time
                    return _PAGE_TAG.join(self.from_, self.id == t.entity_id), t.entity_id, {0}
        if order and order[0].field.kind is FieldKind.METRIC:
            field = order[0].field
            for item in items:
                if _on(item, FieldKind.METRIC) and item.field.path == field.path and self.numeric(item):
                    return self.drive_metric(item, items, keys, conditions)
        return self.from_, self.id, set()

    def drive_metric(
        self, item: Compare, items: list[Node], keys: list[ColumnElement[Any]], conditions: list[ColumnElement[bool]]
    ) -> tuple[FromClause, ColumnElement[Any], set[int]]:
        """:meth:`drive` for a metric: ``item`` compares it with a number."""
        field = item.field
        assert isinstance(field, Field)
        m = _PAGE_METRIC.c
        kind = EntityKind.STEP_RUN if self.entity is Entity.RUN else _KIND[self.entity]
        conditions.extend([m.entity_kind == kind.value, m.key == field.path[-1], m.number.is_not(None)])
        # One row per entity (metadata's key) or per run and named step ((run_id, name) is unique):
        # the comparison applies to that row; else to the run's largest value for > and >= only.
        single = self.entity is not Entity.RUN or len(field.path) == 2
        if single or item.op in (">", ">="):
            items.remove(item)
            conditions.append(self.compare(m.number, ValueType.NUMBER, item.op, item.value, True))
        keys[0] = m.number
        if self.entity is not Entity.RUN:
            return _PAGE_METRIC.join(self.from_, self.id == m.entity_id), self.id, {0}
        step = _PAGE_STEP.c
        from_ = _PAGE_METRIC.join(_PAGE_STEP, step.id == m.entity_id).join(
            pipeline_runs, pipeline_runs.c.id == step.run_id
        )
        if len(field.path) == 2:
            conditions.append(step.name == field.path[0])
        else:
            other = entity_metadata.alias("page_metric_other")
            other_step = step_runs.alias("page_step_other")
            o = other.c
            larger = (
                select(o.entity_id)
                .select_from(other.join(other_step, other_step.c.id == o.entity_id))
                .where(
                    other_step.c.run_id == step.run_id,
                    o.entity_kind == EntityKind.STEP_RUN.value,
                    o.key == m.key,
                    or_(o.number > m.number, and_(o.number == m.number, o.entity_id < m.entity_id)),
                )
            )
            conditions.append(not_(larger.exists()))
        return from_, self.id, {0}

    def in_projects(self, projects: Collection[str]) -> ColumnElement[bool]:
        """Rows of the searched entity in one of ``projects`` (the caller's readable ones)."""
        names = sorted(set(projects))
        if self.entity is Entity.RUN:
            return pipeline_runs.c.pipeline_id.in_(select(pipelines.c.id).where(pipelines.c.project.in_(names)))
        if self.entity is Entity.STEP:
            return pipelines.c.project.in_(names)
        return artifacts_in_projects(self.id, names)

    def numeric(self, node: Compare) -> bool:
        """Whether ``node`` (on a metric) compares ``metadata.number`` with numbers (:meth:`metric`)."""
        first = node.value[0] if isinstance(node.value, tuple) else node.value
        return (
            first is not None
            and first.kind in (ValueType.NUMBER, ValueType.DURATION)
            and not node.op.endswith("like")
            and node.op not in ("is null", "is not null")
        )

    def sortable(self, expression: ColumnElement[Any], field: Field) -> ColumnElement[Any]:
        """``expression`` as ordered and compared by the keyset: text by code point."""
        if field.type is ValueType.TEXT or field.type is ValueType.STATUS:
            return self.text_order(expression)
        return expression

    def text_order(self, expression: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.dialect == "postgresql":
            return expression.collate("C")
        if self.dialect == "mysql":
            return as_binary(expression)
        return expression

    def after(
        self,
        keys: Sequence[ColumnElement[Any]],
        values: Sequence[Any],
        last_id: str,
        *,
        id_: ColumnElement[Any],
        not_null: set[int],
    ) -> ColumnElement[bool]:
        """Rows after the cursor in the order (NULLs last in each key, then the id ``id_``);
        the keys numbered in ``not_null`` have no NULLs."""
        order = self.query.order
        last_descending = order[-1].descending if order else False
        alternatives: list[ColumnElement[bool]] = []
        equal: list[ColumnElement[bool]] = []
        for i, (key, expression, value) in enumerate(zip(order, keys, values)):
            sortable = self.sortable(expression, key.field)
            if value is None:  # only NULLs follow a NULL; they are all equal
                equal.append(expression.is_(None))
                continue
            value = bindparam(None, value, type_=expression.type)
            later = sortable < value if key.descending else sortable > value
            if key.field.nullable and i not in not_null:
                later = or_(later, expression.is_(None))
            alternatives.append(and_(*equal, later))
            equal.append(and_(expression.is_not(None), sortable == value))
        id_after = id_ < last_id if last_descending else id_ > last_id
        alternatives.append(and_(*equal, id_after))
        return or_(*alternatives)

    # ----------------------------------------------------------------- fields

    def attribute(self, name: str) -> ColumnElement[Any]:
        """The column (or expression) of an attribute field of the searched entity."""
        if self.entity is Entity.RUN:
            r = pipeline_runs.c
            columns: dict[str, Any] = {
                "id": r.id,
                "name": r.name,
                "pipeline": _RUN_PIPELINE,
                "project": _RUN_PROJECT,
                "status": r.status,
                "started": r.start_time,
                "ended": r.end_time,
                "git.sha": r.git_sha,
                "git.dirty": r.git_dirty,
                "number": r.number,
            }
            if name == "duration":
                return _duration(self.dialect, r.start_time, r.end_time)
        elif self.entity is Entity.STEP:
            s = step_runs.c
            columns = {
                "id": s.id,
                "step": s.name,
                "run": pipeline_runs.c.name,
                "pipeline": pipelines.c.name,
                "project": pipelines.c.project,
                "status": s.status,
                "started": s.start_time,
                "ended": s.end_time,
                "cache_key": s.cache_key,
            }
            if name == "duration":
                return _duration(self.dialect, s.start_time, s.end_time)
            if name == "cached":
                return case((s.status == Status.CACHED.value, true()), else_=false())
        else:
            a = artifacts.c
            columns = {
                "id": a.id,
                "type": a.type,
                "data_type": a.data_type,
                "size": a.size,
                "content_hash": a.content_hash,
                "producer": _PRODUCER.c.name,
                "run": _PRODUCER_RUN.c.name,
                "pipeline": _PRODUCER_PIPELINE.c.name,
                "project": _PRODUCER_PIPELINE.c.project,
                "created": a.created_at,
                "uri": a.uri,
            }
        return columns[name]

    def order_expression(self, field: Field) -> ColumnElement[Any]:
        """The value an order key sorts by: an attribute, or a number (params, metrics; runs sort
        by the largest value any of their steps logged, or that step's for metrics.STEP.KEY)."""
        if field.kind is FieldKind.ATTRIBUTE:
            return self.attribute(field.name)
        if field.kind is FieldKind.PARAM:
            return self.json.number(self._params_column(), field.path)
        m = entity_metadata.c
        if self.entity is Entity.RUN:
            subquery = (
                select(func.max(m.number))
                .select_from(entity_metadata.join(step_runs, m.entity_id == step_runs.c.id))
                .where(
                    m.entity_kind == EntityKind.STEP_RUN.value,
                    step_runs.c.run_id == pipeline_runs.c.id,
                    m.key == field.path[-1],
                    *([step_runs.c.name == field.path[0]] if len(field.path) == 2 else []),
                )
            )
        else:
            subquery = select(func.max(m.number)).where(
                m.entity_kind == _KIND[self.entity].value, m.entity_id == self.id, m.key == field.path[0]
            )
        return subquery.scalar_subquery()

    def _params_column(self) -> ColumnElement[Any]:
        return pipeline_runs.c.parameters if self.entity is Entity.RUN else step_runs.c.parameters

    # -------------------------------------------------------------- conditions

    def condition(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            return and_(*(self.condition(item) for item in node.items))
        if isinstance(node, Or):
            return or_(*(self.condition(item) for item in node.items))
        if isinstance(node, Not):
            return not_(self.condition(node.item))
        if isinstance(node, Lineage):
            return self.id.in_(self.lineage(node))
        assert isinstance(node, Compare) and isinstance(node.field, Field)
        field = node.field
        if field.kind is FieldKind.TAG:
            return self.tag(node)
        if field.kind is FieldKind.METRIC:
            return self.metric(node)
        if field.kind is FieldKind.PARAM:
            return self.json_compare(self._params_column(), field.path, node)
        if field.name == "cached":
            return self.cached(node)
        if field.name == "pipeline" and self.entity is Entity.RUN:  # pipeline_runs (pipeline_id, start_time)
            named = self.compare(pipelines.c.name, ValueType.TEXT, node.op, node.value, False)
            return pipeline_runs.c.pipeline_id.in_(select(pipelines.c.id).where(named))
        return self.compare(self.attribute(field.name), field.type, node.op, node.value, field.nullable)

    def cached(self, node: Compare) -> ColumnElement[bool]:
        is_cached = step_runs.c.status == Status.CACHED.value
        assert isinstance(node.value, Literal)
        wanted = bool(node.value.value) if node.op == "=" else not node.value.value
        return is_cached if wanted else not_(is_cached)

    def compare(
        self,
        expression: ColumnElement[Any],
        value_type: ValueType,
        op: str,
        value: Literal | tuple[Literal, ...] | None,
        nullable: bool,
    ) -> ColumnElement[bool]:
        """``expression op value``, false where ``expression`` is NULL (except ``is null``)."""
        if op == "is null":
            return expression.is_(None)
        if op == "is not null":
            return expression.is_not(None)
        textual = value_type in (ValueType.TEXT, ValueType.STATUS)
        if op.endswith("like"):
            assert isinstance(value, Literal)
            matched = self.like(expression, str(value.value), op.endswith("ilike"))
            result = not_(matched) if op.startswith("not") else matched
        elif op in ("in", "not in"):
            assert isinstance(value, tuple)
            matched = expression.in_([self.bind(v) for v in value])
            if textual and self.dialect == "mysql":  # the column first (its index), then byte by byte
                matched = and_(matched, self.text_order(expression).in_([self.bind(v) for v in value]))
            result = not_(matched) if op == "not in" else matched
        else:
            assert isinstance(value, Literal)
            bound = self.bind(value)
            if textual and (op not in ("=", "!=") or self.dialect == "mysql"):
                target = self.text_order(expression)
                if op == "=" and self.dialect == "mysql":  # the column first, for its index
                    result = and_(expression == bound, target == bound)
                else:
                    result = target.op(op, is_comparison=True)(bound)
            else:
                result = expression.op(op, is_comparison=True)(bound) if op != "!=" else expression != bound
        return and_(expression.is_not(None), result) if nullable else result

    def bind(self, value: Literal) -> Any:
        if value.kind is ValueType.TEXT or value.kind is ValueType.STATUS:
            return bindparam(None, value.value, type_=String)
        if value.kind is ValueType.TIME:
            return bindparam(None, value.value, type_=pipeline_runs.c.start_time.type)
        if value.kind in (ValueType.NUMBER, ValueType.DURATION):
            if isinstance(value.value, float) or value.kind is ValueType.DURATION:
                return bindparam(None, float(value.value), type_=as_double.type)  # type: ignore[arg-type]
            return bindparam(None, value.value, type_=Integer)
        return bindparam(None, value.value)

    def like(self, expression: ColumnElement[Any], pattern: str, fold: bool) -> ColumnElement[bool]:
        if fold:
            if self.dialect == "postgresql":
                return expression.ilike(bindparam(None, pattern, type_=String), escape="\\")
            return func.lower(expression).like(func.lower(bindparam(None, pattern, type_=String)), escape="\\")
        if self.dialect == "sqlite":
            return expression.op("GLOB", is_comparison=True)(bindparam(None, like_to_glob(pattern), type_=String))
        return expression.like(bindparam(None, pattern, type_=String), escape="\\")

    def json_compare(self, doc: ColumnElement[Any], keys: Sequence[str], node: Compare) -> ColumnElement[bool]:
        """A comparison of the JSON value at ``keys`` of ``doc`` (typed by the literal)."""
        if node.op == "is null":
            return not_(self.json.present(doc, keys))
        if node.op == "is not null":
            return self.json.present(doc, keys)
        values = node.value if isinstance(node.value, tuple) else (node.value,)
        kind = values[0].kind if values[0] is not None else ValueType.TEXT
        if node.op.endswith("like"):
            kind = ValueType.TEXT
        if kind is ValueType.BOOLEAN:
            assert isinstance(node.value, Literal)
            wanted = bool(node.value.value) if node.op == "=" else not node.value.value
            return and_(self.json.present(doc, keys), self.json.boolean_is(doc, keys, wanted))
        if kind is ValueType.TEXT:
            expression = self.json.text(doc, keys)
            return self.compare(expression, ValueType.TEXT, node.op, node.value, True)
        expression = self.json.number(doc, keys)
        return self.compare(expression, ValueType.NUMBER, node.op, node.value, True)

    def tag(self, node: Compare) -> ColumnElement[bool]:
        t = entity_tags.c
        kind = _KIND[self.entity].value
        op = node.op
        if op in ("is null", "is not null"):
            any_tag = select(t.entity_id).where(t.entity_kind == kind)
            return self.id.in_(any_tag) if op == "is not null" else self.id.not_in(any_tag)
        positive = {"=": "=", "!=": "=", "in": "in", "not in": "in", "like": "like", "not like": "like"}
        positive |= {"ilike": "ilike", "not ilike": "ilike"}
        condition = self.compare(t.tag, ValueType.TEXT, positive[op], node.value, False)
        tagged = select(t.entity_id).where(t.entity_kind == kind, condition)
        return self.id.not_in(tagged) if op in ("!=", "not in", "not like", "not ilike") else self.id.in_(tagged)

    def metric(self, node: Compare) -> ColumnElement[bool]:
        """``metrics.X op v``: the entity has (``is null``: has no) such a value (runs: one of
        their steps, or the named step, has)."""
        m = entity_metadata.c
        field = node.field
        assert isinstance(field, Field)
        probe = Compare(field, "is not null" if node.op == "is null" else node.op, node.value, node.pos)
        if self.numeric(probe):  # metadata.number: an index range scan
            matches = self.compare(m.number, ValueType.NUMBER, node.op, node.value, True)
        else:
            matches = self.json_compare(m.value, (), probe)
        if self.entity is Entity.RUN:
            found = (
                select(step_runs.c.run_id)
                .select_from(entity_metadata.join(step_runs, m.entity_id == step_runs.c.id))
                .where(
                    m.entity_kind == EntityKind.STEP_RUN.value,
                    m.key == field.path[-1],
                    *([step_runs.c.name == field.path[0]] if len(field.path) == 2 else []),
                    matches,
                )
            )
        else:
            found = select(m.entity_id).where(
                m.entity_kind == _KIND[self.entity].value, m.key == field.path[0], matches
            )
        return self.id.not_in(found) if node.op == "is null" else self.id.in_(found)

    def lineage(self, node: Lineage) -> Select[Any]:
        """The ids of the searched entity reached by walking lineage from the artifact."""
        depth = node.depth if node.depth is not None else _MAX_WALK
        name = f"walk_{next(self._names)}"
        near = step_io.alias(f"{name}_near")
        far = step_io.alias(f"{name}_far")
        # downstream: a reached artifact is consumed (near: input) by a step whose outputs (far) are
        # reached; upstream: it was output (near) by a step whose inputs (far) are reached.
        near_direction = Direction.INPUT if node.direction == "downstream" else Direction.OUTPUT
        far_direction = Direction.OUTPUT if node.direction == "downstream" else Direction.INPUT
        anchor = select(artifacts.c.id.label("artifact_id"), cast(literal(0), Integer).label("steps")).where(
            artifacts.c.id == bindparam(None, node.artifact_id, type_=String)
        )
        walk = anchor.cte(name, recursive=True)
        walk = walk.union(
            select(far.c.artifact_id, (walk.c.steps + 1).label("steps"))
            .select_from(
                walk.join(
                    near, and_(near.c.artifact_id == walk.c.artifact_id, near.c.direction == near_direction.value)
                ).join(far, and_(far.c.step_run_id == near.c.step_run_id, far.c.direction == far_direction.value))
            )
            .where(walk.c.steps < bindparam(None, depth, type_=Integer))
        )
        edge = step_io.alias(f"{name}_edge")
        steps = (
            select(edge.c.step_run_id)
            .select_from(
                walk.join(
                    edge, and_(edge.c.artifact_id == walk.c.artifact_id, edge.c.direction == near_direction.value)
                )
            )
            .where(walk.c.steps < bindparam(None, depth, type_=Integer))
        )
        if self.entity is Entity.ARTIFACT:
            return select(walk.c.artifact_id).where(walk.c.steps > 0)
        if self.entity is Entity.STEP:
            return steps
        return select(step_runs.c.run_id).where(step_runs.c.id.in_(steps))


def _on(node: Node, kind: FieldKind) -> TypeGuard[_FieldCompare]:
    """Whether ``node`` compares a field of this kind."""
    return isinstance(node, Compare) and isinstance(node.field, Field) and node.field.kind is kind


class _FieldCompare(Compare):
    """A :class:`Compare` whose field is resolved (for type checking only: see :func:`_on`)."""

    field: Field


def like_to_glob(pattern: str) -> str:
    """A ``like`` pattern (``%``, ``_``, backslash escapes) as the case-sensitive SQLite ``GLOB``."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            c = pattern[i]
            out.append(f"[{c}]" if c in "*?[" else c)
        elif c == "%":
            out.append("*")
        elif c == "_":
            out.append("?")
        else:
            out.append(f"[{c}]" if c in "*?[" else c)
        i += 1
    return "".join(out)
