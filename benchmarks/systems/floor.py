"""The floor: raw ``sqlite3``, minimal schema, one transaction per step, WAL + synchronous=NORMAL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from benchmarks.workload import MATERIALIZER, OUTPUTS, PIPELINE, RAW_DATA_URI, STEPS, StepSpec

SCHEMA = """
CREATE TABLE runs (id INTEGER PRIMARY KEY, pipeline TEXT NOT NULL, name TEXT NOT NULL UNIQUE);
CREATE TABLE executions (id INTEGER PRIMARY KEY, run_id INTEGER NOT NULL REFERENCES runs(id), name TEXT NOT NULL,
    state TEXT NOT NULL, cache_key TEXT NOT NULL, params TEXT NOT NULL);
CREATE TABLE artifacts (id INTEGER PRIMARY KEY, uri TEXT NOT NULL, type TEXT NOT NULL, materializer TEXT NOT NULL,
    data_type TEXT NOT NULL);
CREATE TABLE events (execution_id INTEGER NOT NULL, artifact_id INTEGER NOT NULL, type TEXT NOT NULL,
    name TEXT NOT NULL);
CREATE INDEX ix_runs_pipeline ON runs(pipeline);
CREATE INDEX ix_executions_cache_key ON executions(cache_key);
CREATE INDEX ix_executions_run ON executions(run_id);
CREATE INDEX ix_events_execution ON events(execution_id);
CREATE INDEX ix_events_artifact ON events(artifact_id);
"""

LINEAGE = """
WITH RECURSIVE up(artifact_id) AS (
    SELECT ?
    UNION
    SELECT ei.artifact_id FROM up
    JOIN events eo ON eo.artifact_id = up.artifact_id AND eo.type = 'OUTPUT'
    JOIN events ei ON ei.execution_id = eo.execution_id AND ei.type = 'INPUT'
)
SELECT a.id, a.uri, e.execution_id FROM up JOIN artifacts a ON a.id = up.artifact_id
LEFT JOIN events e ON e.artifact_id = a.id AND e.type = 'OUTPUT'
"""


class System:
    name = "sqlite3 floor"

    def __init__(self, directory: Path) -> None:
        self.path = directory / "floor.db"
        self.conn = sqlite3.connect(self.path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.executescript(SCHEMA)
        self.conn.execute("BEGIN")
        cursor = self.conn.execute(
            "INSERT INTO artifacts (uri, type, materializer, data_type) VALUES (?, 'Dataset', ?, 'raw')",
            (RAW_DATA_URI, MATERIALIZER),
        )
        self.conn.execute("COMMIT")
        self.raw_id = cursor.lastrowid
        self.final: dict[int, int] = {}

    def record_run(self, run: int) -> None:
        cursor = self.conn.execute("INSERT INTO runs (pipeline, name) VALUES (?, ?)", (PIPELINE, f"run-{run}"))
        run_id = cursor.lastrowid
        previous = self.raw_id
        for index in range(STEPS):
            spec = StepSpec(run, index)
            self.conn.execute("BEGIN")
            execution = self.conn.execute(
                "INSERT INTO executions (run_id, name, state, cache_key, params) VALUES (?, ?, 'COMPLETE', ?, ?)",
                (run_id, spec.name, spec.cache_key, json.dumps(spec.parameters)),
            ).lastrowid
            self.conn.execute(
                "INSERT INTO events VALUES (?, ?, 'INPUT', ?)", (execution, previous, "raw" if index == 0 else "in")
            )
            outputs = {}
            for name, type_name, data_type in OUTPUTS:
                artifact = self.conn.execute(
                    "INSERT INTO artifacts (uri, type, materializer, data_type) VALUES (?, ?, ?, ?)",
                    (spec.output_uri(name), type_name, MATERIALIZER, data_type),
                ).lastrowid
                self.conn.execute("INSERT INTO events VALUES (?, ?, 'OUTPUT', ?)", (execution, artifact, name))
                outputs[name] = artifact
            self.conn.execute("COMMIT")
            previous = outputs["out_a"]
        self.final[run] = previous

    def list_runs(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM runs WHERE pipeline = ? ORDER BY id", (PIPELINE,))]

    def run_view(self, run: int) -> list[tuple[object, ...]]:
        (run_id,) = self.conn.execute("SELECT id FROM runs WHERE name = ?", (f"run-{run}",)).fetchone()
        steps = self.conn.execute("SELECT id, name, params FROM executions WHERE run_id = ?", (run_id,)).fetchall()
        edges = self.conn.execute(
            "SELECT ev.execution_id, ev.type, ev.name, a.uri FROM executions ex JOIN events ev "
            "ON ev.execution_id = ex.id JOIN artifacts a ON a.id = ev.artifact_id WHERE ex.run_id = ?",
            (run_id,),
        ).fetchall()
        return [*steps, *edges]

    def lineage(self, run: int) -> int:
        rows = self.conn.execute(LINEAGE, (self.final[run],)).fetchall()
        return len(rows)

    def cache_lookup(self, key: str) -> list[tuple[object, ...]]:
        return self.conn.execute(
            "SELECT ex.id, a.uri FROM executions ex JOIN events ev ON ev.execution_id = ex.id AND ev.type = 'OUTPUT' "
            "JOIN artifacts a ON a.id = ev.artifact_id "
            "WHERE ex.id = (SELECT id FROM executions WHERE cache_key = ? AND state = 'COMPLETE' LIMIT 1)",
            (key,),
        ).fetchall()

    def files(self) -> list[Path]:
        return [self.path, self.path.with_name(self.path.name + "-wal")]

    def close(self) -> None:
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()
