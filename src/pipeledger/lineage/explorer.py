"""A lineage explored step by step, and summarised when it grows large.

The web UI's lineage explorer opens an artifact's lineage one step away in both directions
(:func:`neighbourhood`), adds the neighbours of each node the user expands (one lineage query
per expanded node), and past a node limit draws a :func:`summary` instead: nodes grouped by
step name (step runs) and by ``<step>.<output>`` name (artifacts), with counts. Both return a
:class:`~pipeledger.lineage.graph.LineageGraph`, so they are drawn and exported like any other.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pipeledger.lineage.graph import LineageEdge, LineageGraph, LineageNode, artifact_node, from_record

if TYPE_CHECKING:
    from pipeledger.metadata_store.base import MetadataStore

#: The most expanded nodes an explorer state may name (each costs one lineage query).
MAX_EXPANDED = 50
#: The largest depth the explorer reads around its root.
MAX_DEPTH = 50


def merge(graphs: Iterable[LineageGraph], root: str | None, store: MetadataStore | None = None) -> LineageGraph:
    """The union of ``graphs``: each node once (the first graph's copy), each edge once."""
    nodes: dict[str, LineageNode] = {}
    edges: dict[tuple[str, str, str, str], LineageEdge] = {}
    for graph in graphs:
        for node in graph.nodes:
            nodes.setdefault(node.id, node)
        for edge in graph.edges:
            edges.setdefault((edge.source, edge.target, edge.kind, edge.name), edge)
    return LineageGraph(nodes.values(), edges.values(), root, store)


def around(store: MetadataStore, node: LineageNode, depth: int) -> LineageGraph:
    """The lineage ``depth`` steps around one node (an artifact or a step run), both directions;
    an artifact without edges is returned alone. One query."""
    if node.kind == "step":
        record = store.lineage(step_run_id=node.id, direction="both", depth=depth)
        return from_record(record, root=node.id, extra=[node], store=store)
    record = store.lineage(artifact_id=node.id, direction="both", depth=depth)
    return from_record(record, root=node.id, extra=[node], store=store)


def root_node(store: MetadataStore, artifact_id: str) -> LineageNode:
    """The node of the artifact ``artifact_id``, named ``<producer step>.<output>`` when it has a
    producer (two or three queries).

    Raises:
        NotFoundError: no such artifact.
    """
    artifact = store.get_artifact(artifact_id)
    name, run = artifact.data_type.rpartition(".")[2], None
    if artifact.producer_step_run_id is not None:
        producer = store.get_step_run(artifact.producer_step_run_id)
        output = next(
            (
                e.name
                for e in store.list_step_io([producer.id])
                if e.artifact.id == artifact.id and e.direction.value == "output"
            ),
            "output",
        )
        name, run = f"{producer.name}.{output}", store.get_run(producer.run_id).name
    return artifact_node(artifact, name, run)


def neighbourhood(store: MetadataStore, artifact_id: str, depth: int = 1, expanded: Sequence[str] = ()) -> LineageGraph:
    """The explorer's graph: the artifact's lineage ``depth`` steps away in both directions, plus
    the nodes one step around each id in ``expanded`` (in order; an id not yet in the graph when
    its turn comes is skipped, so a stale or forged id costs nothing). At most
    :data:`MAX_EXPANDED` expansions and :data:`MAX_DEPTH` steps are read.

    Example::

        g = neighbourhood(store, model_id, expanded=[train_step_id])

    Raises:
        NotFoundError: no such artifact.
    """
    root = root_node(store, artifact_id)
    graphs = [around(store, root, min(max(depth, 0), MAX_DEPTH))]
    graph = merge(graphs, root.id, store)
    for node_id in list(dict.fromkeys(expanded))[:MAX_EXPANDED]:
        if node_id not in graph or (node_id == root.id and depth >= 1):
            continue
        graphs.append(around(store, graph.node(node_id), 1))
        graph = merge(graphs, root.id, store)
    return graph


def group_key(node: LineageNode) -> str:
    """The group a node is summarised in: ``step:<name>`` or ``artifact:<name>``."""
    return f"{node.kind}:{node.name}"


def summary(graph: LineageGraph) -> LineageGraph:
    """``graph`` with its nodes grouped: every step run of one step name is one node, every
    artifact of one ``<step>.<output>`` name is one node (the root stays alone); a group node's
    ``attributes`` hold ``count``, the ``members``' ids and, for steps, a ``statuses`` count.
    Edges between groups carry ``name`` = the distinct edge names joined by ``, ``, and their
    ``count`` is not kept (a LineageEdge has none): the group nodes' counts say how many."""
    members: dict[str, list[LineageNode]] = {}
    group_of: dict[str, str] = {}
    for node in graph.nodes:
        key = node.id if node.id == graph.root else group_key(node)
        members.setdefault(key, []).append(node)
        group_of[node.id] = key
    nodes: list[LineageNode] = []
    for key, group in members.items():
        first = group[0]
        if key == graph.root:
            nodes.append(first)
            continue
        attributes: dict[str, object] = {"count": len(group), "members": [n.id for n in group]}
        if first.kind == "step":
            statuses: dict[str, int] = {}
            for n in group:
                status = str(n.attributes.get("status"))
                statuses[status] = statuses.get(status, 0) + 1
            attributes["statuses"] = statuses
            attributes["status"] = max(statuses, key=lambda s: statuses[s])
            attributes["pipeline"] = first.attributes.get("pipeline")
        else:
            attributes["type"] = first.attributes.get("type")
            attributes["data_type"] = first.attributes.get("data_type")
        nodes.append(LineageNode(key, first.kind, first.name, attributes))
    names: dict[tuple[str, str, str], set[str]] = {}
    for edge in graph.edges:
        source, target = group_of.get(edge.source), group_of.get(edge.target)
        if source is None or target is None or source == target:
            continue
        names.setdefault((source, target, edge.kind), set()).add(edge.name)
    edges = [LineageEdge(s, t, kind, ", ".join(sorted(n))) for (s, t, kind), n in names.items()]  # type: ignore[arg-type]
    return LineageGraph(nodes, edges, graph.root, graph.store)
