"""ledger-bench phase ``search``: typical filters at R = 1,000 and 100,000 runs (10 steps each).

    python -m benchmarks.search                        # SQLite and PostgreSQL, R = 1,000 and 100,000
    python -m benchmarks.search --runs 1000 --backends sqlite
    python -m benchmarks.search --plans                # also print each filter's query plan

The records are bulk-loaded with SQL (this phase measures search, not recording): per run 10
steps in a chain (``step_0`` ... ``step_9``), one output artifact each, ``step_0`` reading one of
R/10 data set versions (so a version has 10 consumer runs at every R), ``step_3`` logging
``accuracy`` and ``loss``, parameters ``lr`` (10 values), ``epochs`` and ``opt``, tags ``exp:N``
on every run, ``candidate`` on 10% and ``prod`` on 6%. Every filter but ``downstream_of`` (10
consumer runs at every R) matches more than a page of 50 runs at R = 1,000 already, so the
first pages compared across R hold the same number of runs. Each filter runs through
``MetadataStore.search`` (statement, rows and records: what a caller waits for), 5 warm-ups then
40 timed calls; the median and p95 are reported in milliseconds (with ``--rounds N``, every
filter is timed N times in turn on the same records and the median of the rounds' figures is
reported: steadier on a shared machine). Every R of a backend is loaded first and the rounds
interleave them (R = 1,000, then R = 100,000, in each round), so the ratio between R compares
figures taken in the same minutes of a shared machine.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

HERE = Path(__file__).resolve().parent
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
STEPS = 10
BATCH = 20_000
REPEAT = 40
WARMUP = 5


def _hex(n: int, kind: str) -> str:
    """A 32-hex id, time-ordered like pipeledger's (the kind keeps tables apart)."""
    return f"{n:024x}{kind:>08}".replace(" ", "0")[:32]


def load(store: Any, runs: int, seed: int = 3) -> dict[str, Any]:
    """Insert the records with plain INSERTs in batches; returns facts the filters need."""
    from pipeledger.metadata_store.sql import schema

    rnd = random.Random(seed)
    db = store.db
    datasets = max(1, runs // 10)
    pipeline_id = _hex(1, "aaaa0001")

    with db.transaction() as conn:
        conn.execute(
            insert(schema.pipelines), [{"id": pipeline_id, "name": "bench", "docstring": None, "created_at": T0}]
        )
        dataset_rows = [
            {
                "id": _hex(i, "dddd0001"),
                "uri": f"file:///datasets/v{i}",
                "artifact_store": None,
                "type": "Dataset",
                "data_type": "pandas.DataFrame",
                "materializer": "parquet",
                "materializer_version": "1",
                "content_hash": f"{i:064x}",
                "size": 1000 + i,
                "producer_step_run_id": None,
                "created_at": T0,
            }
            for i in range(datasets)
        ]
        for start in range(0, len(dataset_rows), BATCH):
            conn.execute(insert(schema.artifacts), dataset_rows[start : start + BATCH])
    run_rows: list[dict[str, Any]] = []
    step_rows: list[dict[str, Any]] = []
    artifact_rows: list[dict[str, Any]] = []
    io_rows: list[dict[str, Any]] = []
    meta_rows: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    tagged: dict[str, Any]
    for first in range(0, runs, 5_000):
        with db.transaction() as conn:
            for i in range(first, min(runs, first + 5_000)):
                run_id = _hex(i, "eeee0001")
                start = T0 + timedelta(minutes=i)
                run_rows.append(
                    {
                        "id": run_id,
                        "pipeline_id": pipeline_id,
                        "name": f"bench-{i + 1}",
                        "number": i + 1,
                        "status": "completed" if rnd.random() < 0.9 else "failed",
                        "start_time": start,
                        "end_time": start + timedelta(seconds=rnd.randint(60, 3600)),
                        "heartbeat_at": start,
                        "parameters": {
                            "lr": rnd.choice([0.001, 0.003, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0]),
                            "epochs": rnd.randint(1, 50),
                            "opt": rnd.choice(["adam", "sgd"]),
                        },
                        "config": {},
                        "environment": {},
                        "stack": {},
                        "git_sha": None,
                        "git_dirty": None,
                        "code_hash": None,
                        "error": None,
                    }
                )
                tagged = {"entity_kind": "run", "entity_id": run_id}
                if "entity_time" in schema.entity_tags.c:  # revision 0008 (absent when measuring before it)
                    tagged["entity_time"] = start
                tag_rows.append({**tagged, "tag": f"exp:{i % 50}"})
                if rnd.random() < 0.1:
                    tag_rows.append({**tagged, "tag": "candidate"})
                if rnd.random() < 0.06:
                    tag_rows.append({**tagged, "tag": "prod"})
                previous = _hex(rnd.randrange(datasets), "dddd0001")
                for s in range(STEPS):
                    step_id = _hex(i * STEPS + s, "5555" + f"{s:04d}")
                    artifact_id = _hex(i * STEPS + s, "aaaa" + f"{s:04d}")
                    step_rows.append(
                        {
                            "id": step_id,
                            "run_id": run_id,
                            "name": f"step_{s}",
                            "status": "completed",
                            "entrypoint": None,
                            "docstring": None,
                            "parameters": {"k": s},
                            "config": {},
                            "source_hash": None,
                            "cache_key": f"{i * STEPS + s:064x}",
                            "cache_components": None,
                            "cache_invalidated_at": None,
                            "cached_from_id": None,
                            "start_time": start + timedelta(seconds=s),
                            "end_time": start + timedelta(seconds=s + 1),
                            "error": None,
                            "logs_uri": None,
                        }
                    )
                    artifact_rows.append(
                        {
                            "id": artifact_id,
                            "uri": f"file:///bench/{i}/{s}/out",
                            "artifact_store": None,
                            "type": "Data",
                            "data_type": "builtins.dict",
                            "materializer": "json",
                            "materializer_version": "1",
                            "content_hash": f"{i * STEPS + s:064x}",
                            "size": s,
                            "producer_step_run_id": step_id,
                            "created_at": start + timedelta(seconds=s + 1),
                        }
                    )
                    io_rows.append(
                        {"step_run_id": step_id, "direction": "input", "name": "data", "artifact_id": previous}
                    )
                    io_rows.append(
                        {"step_run_id": step_id, "direction": "output", "name": "out", "artifact_id": artifact_id}
                    )
                    previous = artifact_id
                    if s == 3:
                        accuracy = round(rnd.random(), 4)
                        for key, value in (("accuracy", accuracy), ("loss", 1 - accuracy)):
                            meta_rows.append(
                                {
                                    "entity_kind": "step_run",
                                    "entity_id": step_id,
                                    "key": key,
                                    "value": value,
                                    "number": value,
                                }
                            )
            for table, rows in (
                (schema.pipeline_runs, run_rows),
                (schema.step_runs, step_rows),
                (schema.artifacts, artifact_rows),
                (schema.step_io, io_rows),
                (schema.entity_metadata, meta_rows),
                (schema.entity_tags, tag_rows),
            ):
                for start in range(0, len(rows), BATCH):
                    conn.execute(insert(table), rows[start : start + BATCH])
                rows.clear()
    if db.dialect == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    elif db.dialect == "sqlite":
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    return {"dataset": _hex(datasets // 2, "dddd0001")}


def filters(facts: dict[str, Any]) -> dict[str, tuple[str, list[str] | None]]:
    """The typical filters: name -> (filter, order_by)."""
    return {
        "by tag": ("tag = 'prod'", None),
        "by parameter range": ("params.lr >= 0.01 and params.lr < 0.04", None),
        "by metric, ordered by it": ("metrics.step_3.accuracy > 0.93", ["metrics.step_3.accuracy desc"]),
        "downstream_of a data set": (f"downstream_of('{facts['dataset']}')", None),
        "pipeline and status": ("pipeline = 'bench' and status = 'failed'", None),
    }


def timed(store: Any, filter_text: str, order: list[str] | None, limit: int = 50) -> tuple[float, float, int]:
    """Median and p95 (ms) of REPEAT searches (the first page of ``limit`` runs), and the page's size."""
    size = 0
    for _ in range(WARMUP):
        size = len(store.search("run", filter_text, order_by=order, limit=limit).items)
    samples = []
    for _ in range(REPEAT):
        began = time.perf_counter()
        store.search("run", filter_text, order_by=order, limit=limit)
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(0.95 * (len(samples) - 1))], size


def plan(store: Any, filter_text: str, order: list[str] | None) -> str:
    """The database's plan of the search's statement (EXPLAIN QUERY PLAN / EXPLAIN)."""
    from pipeledger.metadata_store.sql.search_compile import SearchCompiler
    from pipeledger.search import build_query

    statement, _ = SearchCompiler(build_query("run", filter_text, order, 50), store.db.dialect).statement()
    compiled = statement.compile(dialect=store.db.engine.dialect, compile_kwargs={"render_postcompile": True})
    prefix = {"sqlite": "EXPLAIN QUERY PLAN ", "postgresql": "EXPLAIN ", "mysql": "EXPLAIN "}[store.db.dialect]
    with store.db.engine.connect() as conn:
        params: Any = compiled.params
        if compiled.positiontup is not None:  # qmark (SQLite)
            params = tuple(params[name] for name in compiled.positiontup)
        rows = conn.exec_driver_sql(prefix + str(compiled), params).all()
    if store.db.dialect == "sqlite":
        return "\n".join(f"{'  ' * 0}{r[-1]}" for r in rows)
    if store.db.dialect == "postgresql":
        return "\n".join(r[0] for r in rows)
    return "\n".join(" | ".join(str(c) for c in r) for r in rows)


@contextmanager
def opened(backend: str, runs: int) -> Iterator[Any]:
    from pipeledger.metadata_store.sql import Database, SqlMetadataStore

    if backend == "sqlite":
        import tempfile

        folder = tempfile.TemporaryDirectory()
        context: Any = nullcontext(f"sqlite:///{folder.name}/search.db")
    else:
        from benchmarks.run import scratch_database

        context = scratch_database(backend)
    with context as url:
        store = SqlMetadataStore(Database(url, display_name=f"{backend} bench"), flavor=backend, auto_upgrade=True)
        try:
            yield store
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="1000,100000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--plans", action="store_true", help="print each filter's query plan")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "search.jsonl")
    parser.add_argument("--limit", type=int, default=50, help="page size (10: a full page of every filter at every R)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time every filter this many times in turn on the same records; report the median of the rounds",
    )
    args = parser.parse_args()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    sizes = [int(r) for r in args.runs.split(",")]
    for backend in args.backends.split(","):
        with ExitStack() as stack:  # every R loaded first, then timed in interleaved rounds
            loaded: dict[int, tuple[Any, dict[str, Any]]] = {}
            for runs in sizes:
                store = stack.enter_context(opened(backend, runs))
                began = time.perf_counter()
                loaded[runs] = (store, load(store, runs))
                print(f"{backend} R={runs:,}: loaded in {time.perf_counter() - began:.0f} s", flush=True)
            rounds: dict[tuple[int, str], list[tuple[float, float, int]]] = {}
            for _ in range(args.rounds):  # R and filters in turn, so a busy moment spreads over all
                for runs, (store, facts) in loaded.items():
                    for name, (filter_text, order) in filters(facts).items():
                        rounds.setdefault((runs, name), []).append(timed(store, filter_text, order, args.limit))
            for runs, (store, facts) in loaded.items():
                print(f"{backend} R={runs:,}:", flush=True)
                for name, (filter_text, order) in filters(facts).items():
                    timings = rounds[(runs, name)]
                    median = statistics.median(r[0] for r in timings)
                    p95 = statistics.median(r[1] for r in timings)
                    size = timings[0][2]
                    row = {
                        "backend": backend,
                        "runs": runs,
                        "filter": name,
                        "median_ms": round(median, 2),
                        "p95_ms": round(p95, 2),
                        "page": size,
                        "rounds": args.rounds,
                        "limit": args.limit,
                    }
                    results.append(row)
                    print(f"  {name:28} median {median:7.2f} ms  p95 {p95:7.2f} ms  ({size} runs)", flush=True)
                    if args.plans:
                        print("    " + plan(store, filter_text, order).replace("\n", "\n    "), flush=True)
    with args.output.open("a") as sink:
        for row in results:
            sink.write(json.dumps(row) + "\n")
    print(table(results))


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: per backend and filter, median/p95 at each R and the p95 ratio of the largest to the smallest R."""
    lines = [
        "| backend | filter | "
        + " | ".join(f"R={r:,} median / p95 (ms)" for r in sorted({x["runs"] for x in results}))
        + " | p95 ratio |",
        "",
    ]
    sizes = sorted({x["runs"] for x in results})
    lines[1] = "|" + "---|" * (3 + len(sizes))
    for backend in dict.fromkeys(x["backend"] for x in results):
        for name in dict.fromkeys(x["filter"] for x in results):
            cells = {x["runs"]: x for x in results if x["backend"] == backend and x["filter"] == name}
            if not cells:
                continue
            figures = [f"{cells[r]['median_ms']:.1f} / {cells[r]['p95_ms']:.1f}" if r in cells else "-" for r in sizes]
            ratio = (
                cells[sizes[-1]]["p95_ms"] / cells[sizes[0]]["p95_ms"]
                if len(cells) == len(sizes) and len(sizes) > 1
                else 0
            )
            lines.append(f"| {backend} | {name} | " + " | ".join(figures) + f" | {ratio:.2f}× |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
