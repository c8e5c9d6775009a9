"""Google ML Metadata 1.17.1 on a SQLite file, through its Python API, one ``put_execution``
per step (execution, its two output artifacts and three events, attributed to the
pipeline and run contexts, in one transaction)."""

from __future__ import annotations

from pathlib import Path

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

from benchmarks.workload import MATERIALIZER, OUTPUTS, PIPELINE, RAW_DATA_URI, STEPS, StepSpec


class System:
    name = "ML Metadata 1.17.1"

    def __init__(self, directory: Path) -> None:
        self.path = directory / "mlmd.db"
        config = pb.ConnectionConfig()
        config.sqlite.filename_uri = str(self.path)
        config.sqlite.connection_mode = pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.store = metadata_store.MetadataStore(config)
        self.types = {}
        for _, type_name, _ in OUTPUTS:
            artifact_type = pb.ArtifactType(name=type_name)
            artifact_type.properties["materializer"] = pb.STRING
            artifact_type.properties["data_type"] = pb.STRING
            self.types[type_name] = self.store.put_artifact_type(artifact_type)
        step_type = pb.ExecutionType(name="Step")
        for key, kind in (("s1", pb.STRING), ("s2", pb.STRING), ("i1", pb.INT), ("i2", pb.INT), ("f1", pb.DOUBLE)):
            step_type.properties[key] = kind
        step_type.properties["cache_key"] = pb.STRING
        self.step_type = self.store.put_execution_type(step_type)
        self.pipeline_type = self.store.put_context_type(pb.ContextType(name="Pipeline"))
        self.run_type = self.store.put_context_type(pb.ContextType(name="Run"))
        [self.pipeline_id] = self.store.put_contexts([pb.Context(type_id=self.pipeline_type, name=PIPELINE)])
        raw = pb.Artifact(type_id=self.types["Dataset"], uri=RAW_DATA_URI, state=pb.Artifact.LIVE)
        raw.properties["materializer"].string_value = MATERIALIZER
        raw.properties["data_type"].string_value = "raw"
        [self.raw_id] = self.store.put_artifacts([raw])
        self.final: dict[int, int] = {}

    def record_run(self, run: int) -> None:
        [run_id] = self.store.put_contexts([pb.Context(type_id=self.run_type, name=f"run-{run}")])
        self.store.put_parent_contexts([pb.ParentContext(child_id=run_id, parent_id=self.pipeline_id)])
        contexts = [
            pb.Context(id=self.pipeline_id, type_id=self.pipeline_type, name=PIPELINE),
            pb.Context(id=run_id, type_id=self.run_type, name=f"run-{run}"),
        ]
        previous = self.raw_id
        for index in range(STEPS):
            spec = StepSpec(run, index)
            execution = pb.Execution(type_id=self.step_type, name=f"run-{run}.{spec.name}")
            execution.last_known_state = pb.Execution.COMPLETE
            for key, value in spec.parameters.items():
                if isinstance(value, str):
                    execution.properties[key].string_value = value
                elif isinstance(value, int):
                    execution.properties[key].int_value = value
                else:
                    execution.properties[key].double_value = float(value)  # type: ignore[arg-type]
            execution.properties["cache_key"].string_value = spec.cache_key
            pairs = [(pb.Artifact(id=previous), pb.Event(type=pb.Event.INPUT))]
            for name, type_name, data_type in OUTPUTS:
                artifact = pb.Artifact(type_id=self.types[type_name], uri=spec.output_uri(name), state=pb.Artifact.LIVE)
                artifact.properties["materializer"].string_value = MATERIALIZER
                artifact.properties["data_type"].string_value = data_type
                event = pb.Event(type=pb.Event.OUTPUT)
                event.path.steps.add().key = name
                pairs.append((artifact, event))
            _, artifact_ids, _ = self.store.put_execution(execution, pairs, contexts)
            previous = artifact_ids[1]
        self.final[run] = previous

    def list_runs(self) -> list[str]:
        return [c.name for c in self.store.get_children_contexts_by_context(self.pipeline_id)]

    def run_view(self, run: int) -> int:
        context = self.store.get_context_by_type_and_name("Run", f"run-{run}")
        executions = self.store.get_executions_by_context(context.id)
        events = self.store.get_events_by_execution_ids([e.id for e in executions])
        artifacts = self.store.get_artifacts_by_id(list({e.artifact_id for e in events}))
        return len(executions) + len(events) + len(artifacts)

    def lineage(self, run: int) -> int:
        query = pb.LineageSubgraphQueryOptions(
            starting_artifacts=pb.LineageSubgraphQueryOptions.StartingNodes(filter_query=f"id = {self.final[run]}"),
            max_num_hops=2 * STEPS + 1,
            direction=pb.LineageSubgraphQueryOptions.UPSTREAM,
        )
        graph = self.store.get_lineage_subgraph(query)
        return len(graph.artifacts) + len(graph.executions)

    def cache_lookup(self, key: str) -> object:
        executions = self.store.get_executions(
            list_options=metadata_store.ListOptions(
                filter_query=f"properties.cache_key.string_value = '{key}' AND last_known_state = COMPLETE"
            )
        )
        if not executions:
            return None
        events = self.store.get_events_by_execution_ids([executions[0].id])
        outputs = [e.artifact_id for e in events if e.type == pb.Event.OUTPUT]
        return self.store.get_artifacts_by_id(outputs)

    def files(self) -> list[Path]:
        return [self.path]

    def close(self) -> None:
        del self.store
