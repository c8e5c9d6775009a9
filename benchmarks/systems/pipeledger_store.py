"""pipeledger's metadata store, recorded through the calls the orchestrator makes for each step.

For every step, ``StepRunner`` records ``start_step`` (the step run, its parameters,
configuration, cache key and components, and its input edges: one transaction) and
``finish_step`` (output artifacts, output edges, metadata, final status: one
transaction). The benchmark makes exactly those calls with the same payloads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from benchmarks.workload import MATERIALIZER, OUTPUTS, PIPELINE, RAW_DATA_URI, STEPS, StepSpec
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.models import ArtifactCreate, RunCreate, Status, StepRunCreate, utcnow


def open_store(directory: Path, backend: str) -> MetadataStore:
    if backend == "rest":  # a pipeledger server (benchmarks.server starts it)
        from pipeledger.metadata_store.rest import RestMetadataStore
        from pipeledger.metadata_store.rest.transport import Transport

        return RestMetadataStore(Transport(os.environ["BENCH_REST_URL"], token=os.environ.get("BENCH_REST_TOKEN")))
    if backend == "sqlite":
        from pipeledger.metadata_store.flavors.sqlite import SqliteMetadataStoreConfig, open_sqlite_store

        return open_sqlite_store(SqliteMetadataStoreConfig(path=str(directory / "pipeledger.db")))
    from sqlalchemy.engine import make_url

    from pipeledger.stack.flavor import ComponentType
    from pipeledger.stack.flavor_registry import FlavorRegistry
    from pipeledger.stack.manager import resolve_config

    url = make_url(os.environ[f"BENCH_{backend.upper()}_URL"])
    flavor = FlavorRegistry().get(ComponentType.METADATA_STORE, backend)
    values = {"host": url.host, "port": str(url.port), "database": url.database, "username": url.username}
    return flavor.create("bench", resolve_config(flavor, "bench", values, directory), directory)


class System:
    def __init__(self, directory: Path, backend: str = "sqlite") -> None:
        self.name = f"pipeledger ({backend})"
        self.directory = directory
        self.store = open_store(directory, backend)
        self.raw = self.store.register_artifact(
            ArtifactCreate(
                name="raw_data",
                uri=RAW_DATA_URI,
                type="Dataset",
                data_type="raw",
                materializer=MATERIALIZER,
                materializer_version="1",
                content_hash="0" * 64,
                size=0,
            ),
            at=utcnow(),
        )
        #: The last output artifact of each run (where lineage starts), as every system keeps.
        self.final: dict[int, str] = {}
        #: Record a step's end with the next step's start, as the sequential orchestrator does
        #: (``finish_and_start``); ``BENCH_HELD=0`` records each apart (the A/B's other side).
        self.held = os.environ.get("BENCH_HELD", "1") != "0"

    def record_run(self, run: int) -> None:
        self.record_named_run(run, f"run-{run}")

    def record_named_run(self, run: int, name: str) -> None:
        """Record run number ``run`` (its payloads) under ``name``."""
        record = self.store.create_run(
            RunCreate(pipeline_name=PIPELINE, name=name, parameters={"run": run}, config={"steps": STEPS})
        )
        previous = self.raw.id
        pending: tuple[str, list[ArtifactCreate]] | None = None  # a finished step, held for the next start
        for index in range(STEPS):
            spec = StepSpec(run, index)
            components: dict[str, Any] = {
                "format": "pipeledger-cache-key/1",
                "code": {f"bench.{spec.name}": spec.cache_key},
                "parameters": spec.parameters,
                "inputs": {"data": "0" * 64},
                "outputs": {name: f"{MATERIALIZER}@1" for name, _, _ in OUTPUTS},
                "cache_version": None,
            }
            create = StepRunCreate(
                run_id=record.id,
                name=spec.name,
                entrypoint=f"bench.{spec.name}",
                parameters=spec.parameters,
                config={"inputs": {"data": "previous.out_a"}, "outputs": ["out_a", "out_b"]},
                source_hash=spec.cache_key,
                cache_key=spec.cache_key,
                cache_components=components,
                inputs={"data": previous},
            )
            if pending is None:
                started = self.store.start_step(create)
            else:
                _, started = self.store.finish_and_start(
                    pending[0], Status.COMPLETED, end_time=utcnow(), outputs=pending[1], logs_uri=None, next_step=create
                )
            outputs = [
                ArtifactCreate(
                    name=name,
                    uri=spec.output_uri(name),
                    type=type_name,
                    data_type=data_type,
                    materializer=MATERIALIZER,
                    materializer_version="1",
                    content_hash=spec.cache_key,
                    size=1024,
                )
                for name, type_name, data_type in OUTPUTS
            ]
            pending = (started.id, outputs)
            if not self.held:
                self.store.finish_step(started.id, Status.COMPLETED, end_time=utcnow(), outputs=outputs, logs_uri=None)
                pending = None
            previous = outputs[0].id
        if pending is not None:
            self.store.finish_step(pending[0], Status.COMPLETED, end_time=utcnow(), outputs=pending[1], logs_uri=None)
        self.store.finish_run(record.id, Status.COMPLETED, end_time=utcnow())
        self.final[run] = previous

    def list_runs(self) -> list[str]:
        return self.store.list_run_names(pipeline=PIPELINE)

    def run_view(self, run: int) -> int:
        view = self.store.get_run_steps(f"run-{run}")  # as the client's run view reads it
        return len(view.steps) + len(view.io)

    def lineage(self, run: int) -> int:
        graph = self.store.lineage(artifact_id=self.final[run], direction="upstream")
        return len(graph.steps) + len(graph.artifacts)

    def cache_lookup(self, key: str) -> object:
        return self.store.find_cached_step(key)

    def files(self) -> list[Path]:
        path = self.directory / "pipeledger.db"
        return [path, path.with_name(path.name + "-wal")]

    def close(self) -> None:
        self.store.close()
