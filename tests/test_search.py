"""Search: every filter the SQL stores run returns what the reference evaluator computes.

Runs, step runs and artifacts are generated once per backend (seeded: the same records on
SQLite, MariaDB and PostgreSQL) and loaded back through the contract; Hypothesis writes filters
from the grammar over the values the records hold (plus others), and each search must return
the ids :mod:`tests.search_reference` returns, in the same order, across pages.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeledger.exceptions import QueryError
from pipeledger.metadata_store.sql import Database, SqlMetadataStore
from pipeledger.metadata_store.sql.search_compile import SearchCompiler
from pipeledger.models import EntityKind, Status
from pipeledger.search import build_query
from pipeledger.testing.helpers import T0, artifact, make_run, make_step
from tests.search_reference import Records, Reference
from tests.servers import enabled_backends, scratch_database

SQL = [b for b in enabled_backends() if b in ("sqlite", "mysql", "postgresql")]
#: Generated filters per entity and backend (three entities: hundreds per backend; 300 each under
#: ``make stress``).
EXAMPLES = 300 if os.environ.get("PIPELEDGER_STRESS") == "1" else 100

TAGS = ["prod", "candidate", "exp:1", "exp:2", "EXP:3", "it's", "日本", "a%b", "a_b", "back\\slash"]
TEXTS = ["adam", "sgd", "Adam", "o'neil", "日本語", "", "with space", "%", "_x"]
PIPELINES = ["train", "serve", "it's quoted"]


@dataclass
class Loaded:
    store: SqlMetadataStore
    reference: Reference
    artifact_ids: list[str]
    times: list[str]


def _generate(store: SqlMetadataStore, seed: int = 17) -> list[str]:
    """About 40 runs of 1-3 steps with parameters, metrics, tags and cross-run lineage."""
    rnd = random.Random(seed)
    artifact_ids: list[str] = []
    for i in range(40):
        start = T0 + timedelta(minutes=7 * i, seconds=rnd.randint(0, 59))
        params: dict[str, Any] = {
            "lr": rnd.choice([0.001, 0.01, 0.1, 0.5, 1]),
            "epochs": rnd.randint(1, 5),
            "opt": rnd.choice(TEXTS),
            "flag": rnd.choice([True, False]),
            "nested": {"depth": rnd.randint(1, 3)},
        }
        for key in list(params):
            if rnd.random() < 0.15:
                del params[key]
        if rnd.random() < 0.1:
            params["lr"] = rnd.choice(["fast", None, True])
        run = make_run(
            store,
            rnd.choice(PIPELINES),
            parameters=params,
            start_time=start,
            tags=rnd.sample(TAGS, rnd.randint(0, 3)),
            git_sha=rnd.choice([None, "abc123", "def456"]),
            git_dirty=rnd.choice([None, True, False]),
        )
        previous: str | None = None
        for j, name in enumerate(rnd.sample(["load", "fit", "eval"], rnd.randint(1, 3))):
            inputs = {}
            if previous is not None:
                inputs["data"] = previous
            if artifact_ids and rnd.random() < 0.3:
                inputs["extra"] = rnd.choice(artifact_ids)
            step = make_step(
                store,
                run,
                name,
                inputs=inputs,
                start_time=start + timedelta(seconds=10 * j),
                parameters={"lr": rnd.choice([0.01, 0.1]), "opt": rnd.choice(TEXTS)},
                cache_key=rnd.choice([None, "k1", "k2"]),
            )
            metrics: dict[str, Any] = {
                "accuracy": rnd.randint(0, 8) / 8,
                "loss": rnd.choice([rnd.randint(0, 16) / 16, "n/a", None]),
                "label": rnd.choice(TEXTS),
                "ok": rnd.choice([True, False]),
            }
            for key in list(metrics):
                if rnd.random() < 0.2:
                    del metrics[key]
            status = rnd.choice([Status.COMPLETED, Status.COMPLETED, Status.FAILED, Status.CACHED])
            out = artifact(
                "out",
                uri=f"file:///r{i}/{name}",
                type=rnd.choice(["Data", "Model", "Dataset"]),
                size=rnd.randint(0, 5000),
                content_hash=rnd.choice(["ab" * 32, "cd" * 32]),
                metadata={"rows": rnd.randint(1, 9)} if rnd.random() < 0.5 else {},
            )
            (made,) = store.finish_step(
                step.id,
                status,
                end_time=start + timedelta(seconds=10 * j + rnd.randint(1, 9)),
                outputs=[out],
                metadata=metrics,
            )
            artifact_ids.append(made.id)
            previous = made.id
            if rnd.random() < 0.3:
                store.add_tags(EntityKind.STEP_RUN, step.id, rnd.sample(TAGS, 2))
            if rnd.random() < 0.3:
                store.add_tags(EntityKind.ARTIFACT, made.id, rnd.sample(TAGS, 1))
        if rnd.random() < 0.85:
            store.finish_run(
                run.id,
                rnd.choice([Status.COMPLETED, Status.FAILED, Status.CRASHED]),
                end_time=start + timedelta(seconds=rnd.randint(30, 600)),
            )
    return artifact_ids


@pytest.fixture(scope="module", params=SQL)
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """The generated records on one backend, loaded once for the module."""
    backend = request.param
    path = tmp_path_factory.mktemp("search") / "search.db"
    context = nullcontext(f"sqlite:///{path}") if backend == "sqlite" else scratch_database(backend)
    with context as url:
        store = SqlMetadataStore(Database(url, display_name=f"{backend} search"), flavor=backend, auto_upgrade=True)
        ids = _generate(store)
        records = Records.load(store, ids)
        times = sorted({r.start_time.isoformat() for r in records.runs.values()})
        yield Loaded(store, Reference(records), ids, times)
        store.close()


# --------------------------------------------------------------------------- filters


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def number() -> st.SearchStrategy[str]:
    return st.sampled_from(["0", "1", "0.5", "0.125", "0.001", "0.01", "0.1", "3", "-1", "2.75", "1e-2", "4500"])


any_text = st.text(alphabet=st.sampled_from(list("ab'%_ \\é日x")), max_size=4)
text_value = st.one_of(st.sampled_from(TEXTS + TAGS + PIPELINES), any_text).map(quote)
like_pattern = st.lists(
    st.sampled_from(["%", "_", "a", "d", "e", "x", "p", "r", "o", ":", "\\%", "\\_", "t"]), max_size=5
).map(lambda parts: quote("".join(parts)))
ascii_pattern = like_pattern
ordering = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])


def text_condition(name: str, nullable: bool = False, ordered: bool = True) -> st.SearchStrategy[str]:
    operators = ordering if ordered else st.sampled_from(["=", "!="])
    options = [
        st.tuples(operators, text_value).map(lambda t: f"{name} {t[0]} {t[1]}"),
        st.lists(text_value, min_size=1, max_size=3).map(lambda vs: f"{name} in ({', '.join(vs)})"),
        st.lists(text_value, min_size=1, max_size=3).map(lambda vs: f"{name} not in ({', '.join(vs)})"),
        st.tuples(st.sampled_from(["like", "not like", "ilike", "not ilike"]), like_pattern).map(
            lambda t: f"{name} {t[0]} {t[1]}"
        ),
    ]
    if nullable:
        options.append(st.sampled_from([f"{name} is null", f"{name} is not null"]))
    return st.one_of(*options)


def number_condition(name: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(ordering, number()).map(lambda t: f"{name} {t[0]} {t[1]}"),
        st.lists(number(), min_size=1, max_size=3).map(lambda vs: f"{name} in ({', '.join(vs)})"),
    )


def json_condition(name: str) -> st.SearchStrategy[str]:
    return st.one_of(
        number_condition(name),
        text_condition(name, nullable=True),
        st.sampled_from([f"{name} = true", f"{name} = false", f"{name} != true"]),
    )


def time_condition(name: str, times: list[str]) -> st.SearchStrategy[str]:
    return st.tuples(ordering, st.sampled_from(times), st.sampled_from([0, 1, -1, 120])).map(
        lambda t: f"{name} {t[0]} {quote(_shift(t[1], t[2]))}"
    )


def _shift(iso: str, seconds: int) -> str:
    from datetime import datetime

    return (datetime.fromisoformat(iso) + timedelta(seconds=seconds)).isoformat()


def conditions(entity: str, loaded: Loaded) -> st.SearchStrategy[str]:
    ids = loaded.artifact_ids
    lineage = st.tuples(
        st.sampled_from(["upstream_of", "downstream_of"]),
        st.sampled_from([*ids, "0" * 32, "it's"]),
        st.sampled_from(["", ", 0", ", 1", ", 2"]),
    ).map(lambda t: f"{t[0]}({quote(t[1])}{t[2]})")
    tag = text_condition("tag", nullable=True, ordered=False)
    statuses = st.sampled_from([s.value for s in Status]).map(quote)
    common = [
        tag,
        lineage,
        st.tuples(st.sampled_from(["=", "!="]), statuses).map(lambda t: f"status {t[0]} {t[1]}")
        if entity != "artifact"
        else tag,
        text_condition("id"),
    ]
    half = st.sampled_from(["0.5", "5.5", "9.5", "30.5", "100.5", "1m", "10s"])
    if entity == "run":
        specific = [
            text_condition("name"),
            text_condition("pipeline"),
            text_condition("git.sha", nullable=True),
            st.sampled_from(["git.dirty = true", "git.dirty = false", "git.dirty is null", "git.dirty != true"]),
            number_condition("number"),
            time_condition("started", loaded.times),
            time_condition("ended", loaded.times),
            st.sampled_from(["ended is null", "ended is not null"]),
            st.tuples(ordering, half).map(lambda t: f"duration {t[0]} {t[1]}"),
            json_condition("params.lr"),
            json_condition("params.opt"),
            json_condition("params.flag"),
            json_condition("params.nested.depth"),
            st.sampled_from(["params.missing is null", "params.epochs is not null"]),
            json_condition("metrics.accuracy"),
            json_condition("metrics.loss"),
            json_condition("metrics.fit.accuracy"),
            json_condition("metrics.label"),
            json_condition("metrics.ok"),
        ]
    elif entity == "step":
        specific = [
            text_condition("step"),
            text_condition("run"),
            text_condition("pipeline"),
            text_condition("cache_key", nullable=True),
            st.sampled_from(["cached = true", "cached = false", "cached != true"]),
            time_condition("started", loaded.times),
            st.tuples(ordering, half).map(lambda t: f"duration {t[0]} {t[1]}"),
            json_condition("params.lr"),
            json_condition("params.opt"),
            json_condition("metrics.accuracy"),
            json_condition("metrics.label"),
        ]
    else:
        specific = [
            text_condition("type"),
            text_condition("uri"),
            text_condition("producer", nullable=True),
            text_condition("run", nullable=True),
            number_condition("size"),
            text_condition("content_hash"),
            json_condition("metrics.rows"),
        ]
    return st.one_of(*common, *specific)


def filters(entity: str, loaded: Loaded) -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, st.sampled_from(["and", "or", "AND", "Or"]), inner).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
            inner.map(lambda f: f"not ({f})"),
            inner.map(lambda f: f"({f})"),
        )

    return st.recursive(conditions(entity, loaded), extend, max_leaves=5)


def all_ids(
    loaded: Loaded, entity: str, text: str | None, order: list[str] | None = None, limit: int = 1000
) -> list[str]:
    found: list[str] = []
    token = None
    while True:
        page = loaded.store.search(entity, text, order_by=order, limit=limit, page_token=token)
        found.extend(item.id for item in page.items)
        token = page.next_page_token
        if token is None:
            return found


def check(loaded: Loaded, entity: str, text: str, order: list[str] | None = None, limit: int = 1000) -> None:
    expected = loaded.reference.search(build_query(entity, text, order, 10))
    assert all_ids(loaded, entity, text, order, limit) == expected, text


SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.parametrize("entity", ["run", "step", "artifact"])
def test_generated_filters_match_the_reference(loaded: Loaded, entity: str) -> None:
    @SETTINGS
    @given(text=filters(entity, loaded))
    def run(text: str) -> None:
        check(loaded, entity, text)

    run()


ORDERS = {
    "run": [
        "name",
        "pipeline",
        "status",
        "started",
        "ended",
        "number",
        "git.sha",
        "git.dirty",
        "params.lr",
        "params.epochs",
        "metrics.accuracy",
        "metrics.fit.accuracy",
        "metrics.loss",
    ],
    "step": ["step", "run", "status", "started", "cache_key", "params.lr", "metrics.accuracy"],
    "artifact": ["type", "size", "uri", "created", "producer", "metrics.rows"],
}


@pytest.mark.parametrize("entity", ["run", "step", "artifact"])
def test_generated_orders_page_like_the_reference(loaded: Loaded, entity: str) -> None:
    keys = st.lists(
        st.tuples(st.sampled_from(ORDERS[entity]), st.sampled_from(["", " asc", " desc"])).map("".join),
        min_size=1,
        max_size=3,
    )

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(order=keys, limit=st.integers(1, 9), text=st.one_of(st.none(), conditions(entity, loaded)))
    def run(order: list[str], limit: int, text: str | None) -> None:
        check(loaded, entity, text, order, limit)  # type: ignore[arg-type]

    run()


DRIVEN = {  # orders and fields whose pages are read in index order (SearchCompiler.drive)
    "run": (["started", "started desc"], ["metrics.accuracy", "metrics.fit.accuracy", "metrics.loss"]),
    "step": (["started", "started desc"], ["metrics.accuracy", "metrics.loss"]),
    "artifact": (["created", "created desc"], ["metrics.rows"]),
}


def _driven(entity: str, text: str, order: list[str], dialect: str) -> bool:
    """Whether the search's statement reads its page from a tags or metadata index."""
    statement, _ = SearchCompiler(build_query(entity, text, order, 5), dialect).statement()
    froms = str(statement).split(" WHERE ")[0]
    return "page_tag" in froms or "page_metric" in froms


@pytest.mark.parametrize("entity", ["run", "step", "artifact"])
def test_pages_read_in_index_order_match_the_reference(loaded: Loaded, entity: str) -> None:
    """``tag = X`` newest (or oldest) first, and a numeric metric filter ordered by that metric:
    the shapes that walk an index in page order return the reference's pages."""
    times, metrics = DRIVEN[entity]
    by_tag = st.tuples(
        st.sampled_from(TAGS).map(lambda t: f"tag = {quote(t)}"), st.sampled_from(times).map(lambda o: [o])
    )
    by_metric = st.sampled_from(metrics).flatmap(
        lambda name: st.tuples(
            number_condition(name),
            st.tuples(
                st.sampled_from(["", " asc", " desc"]).map(lambda d: name + d),
                st.lists(st.sampled_from(ORDERS[entity]), max_size=1),
            ).map(lambda t: [t[0], *t[1]]),
        )
    )

    @SETTINGS
    @given(
        search=st.one_of(by_tag, by_metric),
        extra=st.one_of(st.none(), conditions(entity, loaded)),
        first=st.booleans(),
        limit=st.integers(1, 9),
    )
    def run(search: tuple[str, list[str]], extra: str | None, first: bool, limit: int) -> None:
        text, order = search
        if extra is not None:
            text = f"{text} and ({extra})" if first else f"({extra}) and {text}"
        assert _driven(entity, text, order, loaded.store.db.dialect), text
        check(loaded, entity, text, order, limit)

    run()


@pytest.mark.parametrize("backend", SQL)
def test_index_order_pages_break_ties_by_id(backend: str, tmp_path: Path) -> None:
    """Runs with one start time and one tag, and metrics tied within and across runs, page in
    the order of the reference (ties by id), each run once, whatever the page size."""
    context = nullcontext(f"sqlite:///{tmp_path / 'ties.db'}") if backend == "sqlite" else scratch_database(backend)
    with context as url:
        store = SqlMetadataStore(Database(url, display_name=f"{backend} ties"), flavor=backend, auto_upgrade=True)
        for i in range(5):
            run = make_run(store, "train", start_time=T0, tags=["tie"] if i != 2 else [])
            for j, (name, accuracy) in enumerate([("fit", 0.5), ("eval", 0.5 if i % 2 else 0.25)]):
                step = make_step(store, run, name, start_time=T0 + timedelta(seconds=j))
                store.finish_step(step.id, Status.COMPLETED, end_time=T0, metadata={"accuracy": accuracy})
        tied = Loaded(store, Reference(Records.load(store, [])), [], [])
        for text, order in [
            ("tag = 'tie'", ["started"]),
            ("tag = 'tie'", ["started desc"]),
            ("metrics.accuracy > 0.1", ["metrics.accuracy desc"]),
            ("metrics.accuracy >= 0.25", ["metrics.accuracy"]),
            ("metrics.accuracy < 0.4", ["metrics.accuracy desc"]),
            ("metrics.eval.accuracy in (0.25, 0.5)", ["metrics.eval.accuracy"]),
        ]:
            assert _driven("run", text, order, store.db.dialect), text
            expected = tied.reference.search(build_query("run", text, order, 10))
            assert len(expected) > 1
            for limit in (1, 2, 3):
                assert all_ids(tied, "run", text, order, limit=limit) == expected, (text, limit)
        store.close()


def test_a_page_token_stays_valid_while_runs_are_added(loaded: Loaded) -> None:
    first = loaded.store.search("run", "tag = 'prod'", order_by="started", limit=3)
    assert first.next_page_token is not None
    rest = all_ids(loaded, "run", "tag = 'prod'", ["started"], limit=3)[3:]
    late = make_run(loaded.store, "train", tags=["prod"], start_time=T0 - timedelta(days=1))  # sorts first
    try:
        second = loaded.store.search(
            "run", "tag = 'prod'", order_by="started", limit=3, page_token=first.next_page_token
        )
        assert [r.id for r in second.items] == rest[:3]
    finally:
        loaded.store.delete_run(late.id)


# ---------------------------------------------------------------------------- hostile

HOSTILE = [
    "name = 'x'; drop table pipeline_runs; --",
    "name = 'x' -- comment",
    "name = 'x' /* comment */",
    "name = ''''; drop table pipeline_runs; --'",
    "name = 'robert''); DROP TABLE pipeline_runs;--'",
    "name = '\\'",
    "name like '\\'",
    "name like '%\\'",
    'name = "double "" quoted"',
    "params.`lr'; --` = 1",
    "metrics.`drop table metadata; --` > 0",
    "metrics.fit.`a\"b` = 'x'",
    "tag = '日本' or tag = 'Ω≈ç√' or tag = '🚀'",
    "name = 'x\u202e'",
    "name = 'nul\x00'",
    "name = 'surrogate \ud800'",
    "nämé = 'x'",
    "tag like '[a-z]*'",
    "tag like '*'",
    "name ilike 'TRAIN%' and ;",
    ";",
    "--",
    "/*",
    "'",
    "`",
    "((((",
    "))))",
    "name = 1e999",
    "number = 99999999999999999999999",
    "started > now() - 99999999999d",
    "started > '9999-12-31'",
    "started > '0001-01-01'",
    "downstream_of('x''; --', 5)",
    "upstream_of('" + "a" * 5000 + "')",
    "tag in (" + ", ".join(["'x'"] * 900) + ")",
    "tag in (" + ", ".join(["'x'"] * 1100) + ")",
    "name = '" + "x" * 9980 + "'",
    "name = '" + "x" * 10_000 + "'",
    " or ".join(["tag = 'x'"] * 150),
    " or ".join(["tag = 'x'"] * 250),
    "(" * 1000 + "tag = 'x'" + ")" * 1000,
    "not " * 1000 + "tag = 'x'",
    "(" * 60 + "tag = 'x'" + ")" * 60,
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:30]))
def test_hostile_filters_give_a_query_error_or_the_right_result(loaded: Loaded, text: str) -> None:
    try:
        query = build_query("run", text, None, 10)
    except QueryError as error:
        assert str(error).count("\n") in (0, 2)  # the problem; with a position, the filter and a caret
        assert error.problem and (error.column is None or 0 <= error.column <= len(text))
        return
    assert all_ids(loaded, "run", text) == loaded.reference.search(query)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.sampled_from(list("abtg ()'\"`=<>!;-%_.,*/\\0123456789naeglkiowd")), max_size=40))
def test_arbitrary_text_is_a_query_error_or_a_search(loaded: Loaded, text: str) -> None:
    for entity in ("run", "step", "artifact"):
        try:
            query = build_query(entity, text, None, 10)
        except QueryError:
            continue
        assert all_ids(loaded, entity, text) == loaded.reference.search(query)


def test_a_type_error_points_at_the_value(loaded: Loaded) -> None:
    with pytest.raises(QueryError) as error:
        loaded.store.search("run", "pipeline = 'train' and started > 5")
    assert str(error.value).splitlines() == [
        "started is a time: 'YYYY-MM-DD', 'YYYY-MM-DD HH:MM[:SS]' (UTC unless it has an offset) or now() - 7d",
        "  pipeline = 'train' and started > 5",
        "                                   ^",
    ]


def test_the_reference_is_not_vacuous(loaded: Loaded) -> None:
    """The generated records make filters select some rows and not others."""
    ref = loaded.reference
    for entity, text in [
        ("run", "tag = 'prod'"),
        ("run", "metrics.accuracy > 0.5"),
        ("run", "params.lr = 0.01"),
        ("step", "cached = true"),
        ("artifact", f"downstream_of('{loaded.artifact_ids[0]}')"),
        ("run", f"downstream_of('{loaded.artifact_ids[0]}')"),
    ]:
        total = len(ref.rows(build_query(entity).entity))
        found = ref.search(build_query(entity, text, None, 10))
        assert 0 < len(found) < total, text
